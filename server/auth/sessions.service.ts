import type { Db, Tx } from "../db";
import { recordAudit } from "../audit/audit.service";
import type { Actor } from "./roles";

// A signed-in browser is a row in AuthSession; its cookie (a signed JWT) only names the row
// (`sid`). Every request looks the row up by its key, so deleting it — sign-out, "sign out
// everywhere", a password change, removal from an organisation — ends the session at once,
// whoever still holds a copy of the cookie.

/** How long a session lasts unused; using it (checked at most hourly) extends it. */
export const SESSION_MAX_AGE_S = 30 * 24 * 3600;
const EXTEND_EVERY_MS = 60 * 60_000;

const expiryFromNow = () => new Date(Date.now() + SESSION_MAX_AGE_S * 1000);

export async function startSession(db: Db, userId: string): Promise<{ id: string }> {
  // A person's sessions that ran out are cleared when they sign in again: the table stays small.
  await db.authSession.deleteMany({ where: { userId, expiresAt: { lt: new Date() } } });
  return db.authSession.create({ data: { userId, expiresAt: expiryFromNow() }, select: { id: true } });
}

/** The person a session belongs to, or null once it has been ended or has run out. */
export async function findSessionUser(db: Db, { sessionId, userId }: { sessionId: string; userId: string }): Promise<{ id: string; name: string } | null> {
  const session = await db.authSession.findUnique({
    where: { id: sessionId },
    select: { userId: true, expiresAt: true, lastSeenAt: true, user: { select: { id: true, name: true } } },
  });
  if (!session || session.userId !== userId || session.expiresAt <= new Date()) return null;
  if (Date.now() - session.lastSeenAt.getTime() > EXTEND_EVERY_MS) {
    await db.authSession.updateMany({ where: { id: sessionId }, data: { lastSeenAt: new Date(), expiresAt: expiryFromNow() } });
  }
  return session.user;
}

/** Whether a session is still there: asked by open event streams when access may have changed. */
export async function isSessionLive(db: Db, sessionId: string): Promise<boolean> {
  const session = await db.authSession.findUnique({ where: { id: sessionId }, select: { expiresAt: true } });
  return Boolean(session && session.expiresAt > new Date());
}

export async function endSession(tx: Tx, sessionId: string): Promise<void> {
  await tx.authSession.deleteMany({ where: { id: sessionId } });
}

/** Ends every session of a person, but for `keep` (the browser that asked, after a password change). */
export async function endSessionsOf(tx: Tx, { userId, keep }: { userId: string; keep?: string }): Promise<number> {
  const { count } = await tx.authSession.deleteMany({ where: { userId, ...(keep ? { id: { not: keep } } : {}) } });
  return count;
}

/** "Sign out everywhere": every browser this person is signed in on, this one included. */
export async function signOutEverywhere(db: Db, { actor, orgId }: { actor: Actor; orgId: string | null }): Promise<{ ended: number }> {
  return db.$transaction(async (tx) => {
    const ended = await endSessionsOf(tx, { userId: actor.userId });
    await recordAudit(tx, { orgId, actor, action: "auth.sign_out_everywhere", data: { sessions: ended } });
    return { ended };
  });
}
