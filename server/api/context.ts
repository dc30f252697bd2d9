import { db } from "../db";
import { env } from "../env";
import { resolveRequestIdentity } from "../auth/request-actor";
import { clientAddress } from "../auth/rate-limit";
import { realtimeHub } from "../jobs/hub";
import type { Context } from "./trpc";

/** `connectionParams` come from a subscription's EventSource, which cannot send headers. */
export async function createContext(headers: Headers, connectionParams?: Record<string, string | undefined> | null): Promise<Context> {
  const orgId = typeof connectionParams?.orgId === "string" ? connectionParams.orgId : null;
  const identity = await resolveRequestIdentity(db(), headers, orgId);
  return { ...identity, db: db(), hub: realtimeHub(), baseUrl: env().PUBLIC_URL, address: clientAddress(headers) };
}
