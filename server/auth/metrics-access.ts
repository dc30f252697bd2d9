import crypto from "node:crypto";
import type { Db } from "../db";
import { AppError } from "../errors";
import { isInstanceAdmin } from "./instance-admins.service";
import { resolveRequestIdentity } from "./request-actor";

// The portal's metrics show every organisation's jobs, and which processes run where: a
// scraper holding METRICS_TOKEN, or an instance admin (signed in, or with an API token), only.

const SIGN_IN_HINT = "Send the metrics token as `Authorization: Bearer <METRICS_TOKEN>`, or sign in as an instance admin";

export async function checkMetricsAccess(db: Db, headers: Headers, { metricsToken, instanceAdmins }: { metricsToken?: string; instanceAdmins: string[] }): Promise<void> {
  const bearer = /^Bearer\s+(\S+)$/i.exec(headers.get("authorization") ?? "")?.[1];
  if (bearer && metricsToken && isSameSecret(bearer, metricsToken)) return;
  const identity = await resolveRequestIdentity(db, headers);
  if (identity.authError) throw new AppError("UNAUTHORIZED", `The bearer token is neither the metrics token nor a valid API token. ${SIGN_IN_HINT}`);
  if (!identity.actor) throw new AppError("UNAUTHORIZED", SIGN_IN_HINT);
  if (!(await isInstanceAdmin(db, { userId: identity.actor.userId, instanceAdmins }))) {
    throw new AppError("FORBIDDEN", "Metrics cover the whole instance: they are for instance admins (the first account, and the emails in INSTANCE_ADMINS) and for scrapers holding METRICS_TOKEN; ask an instance admin");
  }
}

/** Compares in constant time: digests of equal length, whatever was sent. */
function isSameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => crypto.createHash("sha256").update(s).digest();
  return crypto.timingSafeEqual(digest(given), digest(expected));
}
