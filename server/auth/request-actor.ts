import type { Db } from "../db";
import type { RealtimeHub } from "../jobs/realtime";
import { watchAccessOf } from "./access-changes";
import { AppError } from "../errors";
import { resolveMembership } from "../orgs/orgs.service";
import type { Actor, OrgActor } from "./roles";
import { resolveSessionUser } from "./session";
import { isSessionLive } from "./sessions.service";
import { authenticateApiToken } from "./tokens.service";

export interface RequestIdentity {
  actor: Actor | null;
  /** Set when the actor is a member of the organisation the request acts in. */
  orgActor: OrgActor | null;
  /** Why a presented credential was refused (a bad token is an error, not an anonymous call). */
  authError: AppError | null;
  /** The organisation the request asked for, when it named one. */
  requestedOrgId: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Who is calling: an API token (`Authorization: Bearer`), else the session cookie. A session
 * names the organisation it acts in with the `x-gantry-org` header (each browser tab sends its
 * own; an EventSource, which cannot send headers, passes it as `orgId`); without one, the
 * last organisation the user chose.
 */
export async function resolveRequestIdentity(db: Db, headers: Headers, orgIdParam?: string | null): Promise<RequestIdentity> {
  const requested = headers.get("x-gantry-org") ?? orgIdParam ?? null;
  const requestedOrgId = requested && UUID.test(requested) ? requested.toLowerCase() : null;
  const authorization = headers.get("authorization");
  if (authorization) {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization);
    if (!match) return { actor: null, orgActor: null, requestedOrgId, authError: new AppError("UNAUTHORIZED", "Send the API token as `Authorization: Bearer <token>`") };
    try {
      const orgActor = await authenticateApiToken(db, match[1]);
      if (requestedOrgId && requestedOrgId !== orgActor.orgId) {
        return { actor: orgActor, orgActor: null, requestedOrgId, authError: null };
      }
      return { actor: orgActor, orgActor, requestedOrgId, authError: null };
    } catch (error) {
      return { actor: null, orgActor: null, requestedOrgId, authError: error as AppError };
    }
  }
  // A signed-out, ended or expired session is no session: the caller is anonymous.
  const user = await resolveSessionUser(db, headers);
  if (!user) return { actor: null, orgActor: null, requestedOrgId, authError: null };
  const actor: Actor = { userId: user.id, label: user.name, sessionId: user.sessionId };
  const membership = await resolveMembership(db, { userId: user.id, orgId: requestedOrgId });
  return { actor, orgActor: membership ? { ...actor, ...membership } : null, requestedOrgId, authError: null };
}

/**
 * Why an actor no longer has its place, or null while it does: still a member of the
 * organisation, with a live session or token, whichever it came with.
 */
export async function whyNoLongerAllowed(db: Db, actor: OrgActor): Promise<string | null> {
  const membership = await db.membership.findUnique({ where: { orgId_userId: { orgId: actor.orgId, userId: actor.userId } }, select: { id: true } });
  if (!membership) return `${actor.label} is no longer a member of this organisation`;
  if (actor.sessionId && !(await isSessionLive(db, actor.sessionId))) return "your session has ended (signed out, or signed out everywhere): sign in again";
  if (!actor.tokenId) return null;
  const token = await db.apiToken.findUnique({ where: { id: actor.tokenId }, select: { revokedAt: true, expiresAt: true } });
  if (!token || token.revokedAt) return "the API token was revoked: make a new one under Settings → API tokens";
  if (token.expiresAt && token.expiresAt <= new Date()) return "the API token has expired: make a new one under Settings → API tokens";
  return null;
}

/** Whether an actor still has its place (see whyNoLongerAllowed). */
export async function isStillMember(db: Db, actor: OrgActor): Promise<boolean> {
  return (await whyNoLongerAllowed(db, actor)) === null;
}

/**
 * For an open event stream: whether its caller may still read it, asked every 30 s (live joints:
 * every few seconds) and at once whenever their access changes (sign-out, revoked token,
 * removal), so the stream ends promptly.
 */
export function streamAccessCheck(db: Db, hub: RealtimeHub, actor: OrgActor) {
  return {
    isStillAllowed: () => isStillMember(db, actor),
    whyNotAllowed: () => whyNoLongerAllowed(db, actor),
    watchAccess: (changed: () => void) => watchAccessOf(hub, actor.userId, changed),
  };
}
