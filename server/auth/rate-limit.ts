import type { IncomingHttpHeaders } from "node:http";
import type { Db } from "../db";
import { env } from "../env";
import { AppError } from "../errors";
import { countRateLimitRefusal } from "../metrics/process-metrics";
import { isInCidr, parseCidr, parseIp, type Cidr } from "../security/ip-ranges";

export interface RateLimitRule {
  /** What is limited, for the message: "sign-in attempts for this email". */
  what: string;
  /** Its name in the metrics (`limit` label); without one, the key's first part. */
  name?: string;
  limit: number;
  windowMs: number;
}

export const rateLimits = {
  signInPerAddress: { name: "sign_in_per_address", what: "sign-in attempts from your network address", limit: 50, windowMs: 15 * 60_000 },
  signInPerAddressAndEmail: { name: "sign_in_per_account", what: "sign-in attempts for this account from your network address", limit: 10, windowMs: 15 * 60_000 },
  signUpPerAddress: { name: "sign_up_per_address", what: "new accounts from your network address", limit: 10, windowMs: 60 * 60_000 },
  passwordChangePerUser: { name: "password_change_per_user", what: "password changes", limit: 10, windowMs: 15 * 60_000 },
} satisfies Record<string, RateLimitRule>;

/**
 * Failed sign-ins for one account from anywhere are not refused, which would let anyone lock
 * its owner out, but slowed down: past `freeFailures` in the window, each attempt waits a
 * second more, up to `maxDelayMs`. Guessing from one address is stopped by the limits above.
 */
export const signInSlowdown = { freeFailures: 10, stepMs: 1_000, maxDelayMs: 10_000, windowMs: 15 * 60_000 };

/** How long this attempt on an account waits, given its recent failures. */
export function signInDelayMs(failures: number, rule = signInSlowdown): number {
  return Math.min(rule.maxDelayMs, Math.max(0, failures - rule.freeFailures + 1) * rule.stepMs);
}

const failuresKey = (email: string) => `sign-in:failures:${email}`;

/** Waits as long as the account's recent failed sign-ins call for (see signInSlowdown). */
export async function slowDownSignIn(db: Db, email: string): Promise<void> {
  const delay = signInDelayMs(await readAttempts(db, failuresKey(email), signInSlowdown.windowMs));
  if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
}

export async function recordSignInFailure(db: Db, email: string): Promise<void> {
  await countAttempt(db, failuresKey(email), signInSlowdown.windowMs);
}

/** The owner got in: earlier failures no longer slow the account down. */
export async function clearSignInFailures(db: Db, email: string): Promise<void> {
  await clearAttempts(db, failuresKey(email));
}

/**
 * Counts one attempt against `key` in a fixed window kept in Postgres (so every web process
 * shares it) and refuses with RATE_LIMITED, saying when to try again, once over the limit.
 */
export async function consumeRateLimit(db: Db, key: string, rule: RateLimitRule): Promise<void> {
  const row = await countAttempt(db, key, rule.windowMs);
  if (row.count > rule.limit) {
    countRateLimitRefusal(rule.name ?? key.split(":")[0]);
    const leftMs = row.windowStart.getTime() + rule.windowMs - Date.now();
    // Windows of seconds (a camera's frame rate) are told in seconds, longer ones in minutes.
    if (rule.windowMs < 60_000) {
      const seconds = Math.max(1, Math.ceil(leftMs / 1000));
      throw new AppError("RATE_LIMITED", `Too many ${rule.what}; try again in ${seconds === 1 ? "a second" : `${seconds} seconds`}`);
    }
    const minutes = Math.max(1, Math.ceil(leftMs / 60_000));
    throw new AppError("RATE_LIMITED", `Too many ${rule.what}; try again in ${minutes} minute${minutes === 1 ? "" : "s"}`);
  }
}

/** Adds one to `key`'s count in its current window (a new window once the last has passed). */
export async function countAttempt(db: Db, key: string, windowMs: number): Promise<{ count: number; windowStart: Date }> {
  const [row] = await db.$queryRaw<{ count: number; windowStart: Date }[]>`
    INSERT INTO "RateLimit" ("key", "windowStart", "count") VALUES (${key}, (now() AT TIME ZONE 'UTC'), 1)
    ON CONFLICT ("key") DO UPDATE SET
      "count" = CASE WHEN "RateLimit"."windowStart" < (now() AT TIME ZONE 'UTC') - make_interval(secs => ${windowMs / 1000}) THEN 1 ELSE "RateLimit"."count" + 1 END,
      "windowStart" = CASE WHEN "RateLimit"."windowStart" < (now() AT TIME ZONE 'UTC') - make_interval(secs => ${windowMs / 1000}) THEN (now() AT TIME ZONE 'UTC') ELSE "RateLimit"."windowStart" END
    RETURNING "count", "windowStart"`;
  return row;
}

/** `key`'s count in its current window, without adding to it. */
export async function readAttempts(db: Db, key: string, windowMs: number): Promise<number> {
  const [row] = await db.$queryRaw<{ count: number }[]>`
    SELECT "count" FROM "RateLimit" WHERE "key" = ${key} AND "windowStart" >= (now() AT TIME ZONE 'UTC') - make_interval(secs => ${windowMs / 1000})`;
  return row?.count ?? 0;
}

export async function clearAttempts(db: Db, key: string): Promise<void> {
  await db.rateLimit.deleteMany({ where: { key } });
}

/** Per-address limits apply only when the address is known: unknown callers must not share one bucket. */
export async function consumeAddressLimit(db: Db, scope: string, address: string | undefined, rule: RateLimitRule): Promise<void> {
  if (address) await consumeRateLimit(db, `${scope}:address:${address}`, rule);
}

let trustedCache: { source: string[]; ranges: Cidr[] } | undefined;
function trustedProxies(): Cidr[] {
  const source = env().TRUSTED_PROXIES;
  if (trustedCache?.source !== source) trustedCache = { source, ranges: source.map((text) => parseCidr(text)).filter((c): c is Cidr => c !== null) };
  return trustedCache.ranges;
}

// A dual-stack socket reports IPv4 callers as ::ffff:a.b.c.d; they are the same address.
const unmapped = (address: string) => address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");

/**
 * The caller's network address. The portal's front server (scripts/web.ts) adds the address
 * that connected to it at the end of X-Forwarded-For, so the list ends with the one hop
 * nobody could forge. Reading from the end, an address counts as the caller unless it is a
 * trusted proxy (TRUSTED_PROXIES), whose own report (the entry before it) is then believed.
 * Whatever a caller writes into the header itself sits before an untrusted hop, and is ignored.
 */
export function clientAddress(headers: Headers, trusted: Cidr[] = trustedProxies()): string | undefined {
  const hops = (headers.get("x-forwarded-for") ?? "").split(",").map((hop) => unmapped(hop.trim())).filter(Boolean);
  for (let i = hops.length - 1; i > 0; i--) {
    const ip = parseIp(hops[i]);
    if (!ip || !trusted.some((range) => isInCidr(ip, range))) return hops[i];
  }
  return hops[0];
}

/**
 * What the front server does with each request before Next sees it: the address that
 * connected goes at the end of X-Forwarded-For, after whatever the caller or a proxy wrote.
 */
export function recordPeerAddress(headers: IncomingHttpHeaders, peer: string | undefined): void {
  const forwarded = [headers["x-forwarded-for"]].flat().filter(Boolean).join(", ");
  const address = peer ? unmapped(peer) : "unknown";
  headers["x-forwarded-for"] = forwarded ? `${forwarded}, ${address}` : address;
}
