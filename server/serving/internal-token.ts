import crypto from "node:crypto";
import { z } from "zod";
import type { OrgActor } from "../auth/roles";

// Short-lived tokens the portal signs to call the model server on a signed-in person's behalf
// (the endpoint page's "try it" form): `gti_<base64url payload>.<base64url HMAC-SHA256>`, the
// payload naming the organisation, the user and an expiry at most a minute away. The key is
// derived from AUTH_SECRET with HKDF under a label of its own, so it is never the key that
// signs sessions, and a token of one kind cannot pass for the other. Nothing is stored: the
// model server checks the signature and the expiry, and the token acts as a viewer.

export const INTERNAL_TOKEN_PREFIX = "gti_";
/** The longest a token may live; the model server refuses any that claims to live longer. */
export const INTERNAL_TOKEN_MAX_MS = 60_000;
const TOKEN_RE = /^gti_([A-Za-z0-9_-]{1,400})\.([A-Za-z0-9_-]{43})$/;
const payloadSchema = z.object({ o: z.uuid(), u: z.uuid(), e: z.number().int() });

const keys = new Map<string, Buffer>();
function keyFor(secret: string): Buffer {
  let key = keys.get(secret);
  if (!key) {
    key = Buffer.from(crypto.hkdfSync("sha256", secret, "gantry", "gantry model-server internal token v1", 32));
    keys.set(secret, key);
  }
  return key;
}

const sign = (secret: string, payload: string) => crypto.createHmac("sha256", keyFor(secret)).update(`gti.${payload}`).digest("base64url");

export function mintInternalToken(secret: string, { orgId, userId }: { orgId: string; userId: string }, { ttlMs = 30_000, now = Date.now() } = {}): string {
  const payload = Buffer.from(JSON.stringify({ o: orgId, u: userId, e: now + ttlMs })).toString("base64url");
  return `${INTERNAL_TOKEN_PREFIX}${payload}.${sign(secret, payload)}`;
}

/** The viewer the token stands for, or null when it is malformed, forged, expired or too long-lived. */
export function verifyInternalToken(secret: string, token: string, now = Date.now()): OrgActor | null {
  const match = TOKEN_RE.exec(token);
  if (!match) return null;
  const expected = Buffer.from(sign(secret, match[1]));
  const given = Buffer.from(match[2]);
  if (expected.length !== given.length || !crypto.timingSafeEqual(expected, given)) return null;
  let payload: z.infer<typeof payloadSchema>;
  try {
    payload = payloadSchema.parse(JSON.parse(Buffer.from(match[1], "base64url").toString("utf8")));
  } catch {
    return null;
  }
  if (payload.e <= now || payload.e - now > INTERNAL_TOKEN_MAX_MS) return null;
  return { userId: payload.u, label: "try it (portal)", orgId: payload.o, role: "viewer" };
}
