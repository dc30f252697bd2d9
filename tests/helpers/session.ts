import { encode } from "next-auth/jwt";
import type { Db } from "../../server/db";
import { env } from "../../server/env";
import { sessionCookieName } from "../../server/auth/session";
import { startSession } from "../../server/auth/sessions.service";

/** A signed-in browser's cookie header for this person: a new session, as signing in makes one. */
export async function sessionCookie(db: Db, userId: string): Promise<string> {
  const { id } = await startSession(db, userId);
  return `${sessionCookieName()}=${await encode({ token: { sub: userId, sid: id }, secret: env().AUTH_SECRET })}`;
}
