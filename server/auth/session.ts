import { decode } from "next-auth/jwt";
import type { Db } from "../db";
import { env } from "../env";
import { findSessionUser } from "./sessions.service";

/** next-auth's session cookie, as it names it (secure cookies when served over https). */
export function sessionCookieName(): string {
  return env().PUBLIC_URL.startsWith("https://") ? "__Secure-next-auth.session-token" : "next-auth.session-token";
}

/** A cookie's value, percent-decoded; one that does not decode counts as no cookie (its holder is anonymous). */
function readCookie(header: string | null, name: string): string | undefined {
  try {
    return readCookieValue(header, name);
  } catch (error) {
    if (error instanceof URIError) return undefined;
    throw error;
  }
}

function readCookieValue(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  const parts = header.split(/;\s*/);
  const whole = parts.find((p) => p.startsWith(`${name}=`));
  if (whole) return decodeURIComponent(whole.slice(name.length + 1));
  // Large sessions are split into name.0, name.1, ...
  const chunks = parts
    .filter((p) => p.startsWith(`${name}.`))
    .map((p) => {
      const eq = p.indexOf("=");
      return { i: Number(p.slice(name.length + 1, eq)), v: decodeURIComponent(p.slice(eq + 1)) };
    })
    .sort((a, b) => a.i - b.i);
  return chunks.length ? chunks.map((c) => c.v).join("") : undefined;
}

/** What the session cookie says: whose it is and which session (AuthSession) it names. */
export interface SessionClaims {
  userId: string;
  sessionId: string;
}

/**
 * The claims of a validly signed session cookie, or null. A cookie without a session id (made
 * before sessions were kept in the database) counts as none: its holder signs in again.
 */
export async function readSessionClaims(headers: Headers): Promise<SessionClaims | null> {
  const token = readCookie(headers.get("cookie"), sessionCookieName());
  if (!token) return null;
  try {
    const payload = await decode({ token, secret: env().AUTH_SECRET });
    return typeof payload?.sub === "string" && typeof payload.sid === "string" ? { userId: payload.sub, sessionId: payload.sid } : null;
  } catch {
    return null;
  }
}

/** The signed-in person, when the cookie names a session that has not been ended. */
export async function resolveSessionUser(db: Db, headers: Headers): Promise<{ id: string; name: string; sessionId: string } | null> {
  const claims = await readSessionClaims(headers);
  if (!claims) return null;
  const user = await findSessionUser(db, claims);
  return user ? { ...user, sessionId: claims.sessionId } : null;
}
