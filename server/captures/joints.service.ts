import { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import { AccessRecheck, type StreamAccessOptions } from "../auth/access-recheck";
import type { OrgActor } from "../auth/roles";
import { consumeRateLimit } from "../auth/rate-limit";
import type { ChannelSource } from "../jobs/realtime";
import type { jointStateSchema, postJointsInput } from "./captures.schemas";
import { findSession } from "./captures.queries";
import { captureLimits, type CaptureLimits } from "./limits";

// Joint angles posted for a session (the earlier LeRobot loop posts them; an agent-bound arm's
// live joints go through the hardware stream instead). Kept so each chunk can name the pose
// nearest each frame, and so a page can show the latest pose.

type JointState = z.infer<typeof jointStateSchema>;

export async function latestJointState(db: Tx, sessionId: string): Promise<JointState | null> {
  const row = await db.captureJointState.findFirst({ where: { sessionId }, orderBy: { takenAt: "desc" }, select: { takenAt: true, angles: true } });
  return row ? { t: row.takenAt.getTime(), angles: row.angles } : null;
}

/** Stores one pose for an active session, at most CAPTURE_JOINT_STATES_PER_SECOND a second. */
export async function postJointState(
  db: Db,
  { actor, sessionId, input, limits = captureLimits() }: { actor: OrgActor; sessionId: string; input: z.output<typeof postJointsInput>; limits?: CaptureLimits },
): Promise<JointState> {
  const session = await findSession(db, actor, sessionId);
  if (session.status !== "active") throw new AppError("CONFLICT", `Capture session "${session.name}" is stopped and takes no joint angles; start it again, or create a new session`);
  await consumeRateLimit(db, `capture:joints:${session.id}`, {
    name: "capture_joint_states",
    what: `joint states for this capture session (CAPTURE_JOINT_STATES_PER_SECOND allows ${limits.jointStatesPerSecond} a second)`,
    limit: limits.jointStatesPerSecond,
    windowMs: 1000,
  });
  const takenAt = new Date(input.t ?? Date.now());
  await db.captureJointState.create({ data: { orgId: actor.orgId, sessionId: session.id, takenAt, angles: input.joint_angles } });
  const state = { t: takenAt.getTime(), angles: input.joint_angles };
  // Pages showing the twin hear it at once, whichever web process they are on.
  await db.$executeRaw`SELECT pg_notify(${CAPTURE_JOINTS_CHANNEL}, ${JSON.stringify({ sessionId: session.id, ...state })})`;
  return state;
}

/** NOTIFY channel: `{sessionId, t, angles}` of each posted pose. */
export const CAPTURE_JOINTS_CHANNEL = "gantry_capture_joints";

const notifiedSchema = z.object({ sessionId: z.uuid(), t: z.number(), angles: z.array(z.number()) });

/** How often the session's row is looked at while no pose arrives (a deleted session ends the stream). */
const SESSION_EVERY_MS = 2000;

/**
 * The session's poses as they are posted, until `signal`: first the latest (null when none yet);
 * a slow reader gets the newest, not a backlog. With `whyNotAllowed`/`watchAccess` the caller's
 * access is asked again while it is open (AccessRecheck); a deleted session ends it too.
 */
export async function* jointStates(
  db: Db,
  { actor, sessionId, hub, signal, accessEveryMs, sessionEveryMs = SESSION_EVERY_MS, ...access }: { actor: OrgActor; sessionId: string; hub: ChannelSource; signal: AbortSignal; accessEveryMs?: number; sessionEveryMs?: number } & StreamAccessOptions,
): AsyncGenerator<JointState | null> {
  const session = await findSession(db, actor, sessionId);
  let next: JointState | null = null;
  let wake: (() => void) | null = null;
  const unlisten = hub.listen(CAPTURE_JOINTS_CHANNEL, (payload) => {
    if (!payload) return;
    let parsed: z.infer<typeof notifiedSchema>;
    try {
      const r = notifiedSchema.safeParse(JSON.parse(payload));
      if (!r.success) return;
      parsed = r.data;
    } catch {
      return;
    }
    if (parsed.sessionId !== sessionId) return;
    next = { t: parsed.t, angles: parsed.angles };
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort);
  const recheck = new AccessRecheck({ ...access, everyMs: accessEveryMs, what: "The twin's joints" }, () => wake?.());
  let sessionCheckedAt = Date.now();
  try {
    await recheck.check();
    // Listening before the latest is read: a state posted after that read arrives as a notification.
    await hub.ensureConnected?.();
    yield await latestJointState(db, sessionId);
    while (!signal.aborted) {
      await recheck.check();
      if (Date.now() - sessionCheckedAt >= sessionEveryMs) {
        sessionCheckedAt = Date.now();
        const exists = await db.captureSession.findFirst({ where: { id: sessionId, orgId: actor.orgId }, select: { id: true } });
        if (!exists) throw new AppError("NOT_FOUND", `The twin's joints stopped: capture session "${session.name}" was deleted`);
      }
      if (!next) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(sessionEveryMs, recheck.msUntilDue()));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
          if (next || signal.aborted) wake();
        });
      }
      wake = null;
      if (next) {
        const state: JointState = next;
        next = null;
        yield state;
      }
    }
  } finally {
    unlisten();
    recheck.stop();
    signal.removeEventListener("abort", onAbort);
  }
}

export async function getLatestJointState(db: Db, { actor, sessionId }: { actor: OrgActor; sessionId: string }): Promise<JointState | null> {
  await findSession(db, actor, sessionId);
  return latestJointState(db, sessionId);
}

/** Joint states kept a second once thinned: one for each 100 ms of the sender's clock. */
export const THINNED_JOINT_STATE_MS = 100;
/** How long joint states are kept as they came before they are thinned. */
export const JOINT_STATES_KEPT_WHOLE_MS = 60_000;

/**
 * Thins joint states stored more than `olderThanMs` ago to one for each `keepEveryMs` of the
 * time they were taken (the earliest of each), per session: a followed arm at 30 Hz or a loop
 * posting at 200 Hz leaves 10 a second behind, enough for the pose nearest each frame, while
 * the recent ones stay whole for the trainer's frame list. Stable: running it again removes
 * nothing. Scheduled every minute; states stored over a day before a run are not looked at.
 */
export async function thinJointStates(db: Db, { olderThanMs = JOINT_STATES_KEPT_WHOLE_MS, keepEveryMs = THINNED_JOINT_STATE_MS, now = new Date() }: { olderThanMs?: number; keepEveryMs?: number; now?: Date } = {}): Promise<number> {
  const cutoff = new Date(now.getTime() - olderThanMs);
  // Rows a day older were thinned by the runs of that day: only the last day is looked at.
  const since = new Date(cutoff.getTime() - 86_400_000);
  return db.$executeRaw`
    DELETE FROM "CaptureJointState" AS j USING (
      SELECT "id", row_number() OVER (
        PARTITION BY "sessionId", floor(extract(epoch FROM "takenAt") * 1000 / ${keepEveryMs}::float8)
        ORDER BY "takenAt", "id") AS n
      FROM "CaptureJointState" WHERE "createdAt" < ${cutoff} AND "createdAt" >= ${since}
    ) AS r
    WHERE j."id" = r."id" AND r.n > 1`;
}
