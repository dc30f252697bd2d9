import type { Db } from "../db";
import { AppError } from "../errors";

export interface RateLimitRule {
  /** What is limited, for the message: "sign-in attempts for this email". */
  what: string;
  limit: number;
  windowMs: number;
}

export const rateLimits = {
  signInPerEmail: { what: "sign-in attempts for this account", limit: 10, windowMs: 15 * 60_000 },
  signInPerAddress: { what: "sign-in attempts from your network address", limit: 50, windowMs: 15 * 60_000 },
  signUpPerAddress: { what: "new accounts from your network address", limit: 10, windowMs: 60 * 60_000 },
} satisfies Record<string, RateLimitRule>;

/**
 * Counts one attempt against `key` in a fixed window kept in Postgres (so every web process
 * shares it) and refuses with RATE_LIMITED, saying when to try again, once over the limit.
 */
export async function consumeRateLimit(db: Db, key: string, rule: RateLimitRule): Promise<void> {
  const [row] = await db.$queryRaw<{ count: number; windowStart: Date }[]>`
    INSERT INTO "RateLimit" ("key", "windowStart", "count") VALUES (${key}, (now() AT TIME ZONE 'UTC'), 1)
    ON CONFLICT ("key") DO UPDATE SET
      "count" = CASE WHEN "RateLimit"."windowStart" < (now() AT TIME ZONE 'UTC') - make_interval(secs => ${rule.windowMs / 1000}) THEN 1 ELSE "RateLimit"."count" + 1 END,
      "windowStart" = CASE WHEN "RateLimit"."windowStart" < (now() AT TIME ZONE 'UTC') - make_interval(secs => ${rule.windowMs / 1000}) THEN (now() AT TIME ZONE 'UTC') ELSE "RateLimit"."windowStart" END
    RETURNING "count", "windowStart"`;
  if (row.count > rule.limit) {
    const minutes = Math.max(1, Math.ceil((row.windowStart.getTime() + rule.windowMs - Date.now()) / 60_000));
    throw new AppError("RATE_LIMITED", `Too many ${rule.what}; try again in ${minutes} minute${minutes === 1 ? "" : "s"}`);
  }
}

/** The caller's address as the proxy in front (or Next itself) reports it, if anyone does. */
export function clientAddress(headers: Headers): string | undefined {
  return headers.get("x-forwarded-for")?.split(",")[0]?.trim() || headers.get("x-real-ip") || undefined;
}

/** Per-address limits apply only when the address is known: unknown callers must not share one bucket. */
export async function consumeAddressLimit(db: Db, scope: string, address: string | undefined, rule: RateLimitRule): Promise<void> {
  if (address) await consumeRateLimit(db, `${scope}:address:${address}`, rule);
}
