import { z } from "zod";
import { streamAccessCheck } from "../../auth/request-actor";
import {
  captureChunkSchema,
  captureSessionDetailSchema,
  captureSessionSchema,
  captureSnapshotSchema,
  createCaptureInput,
  listSnapshotsInput,
  sessionIdInput,
} from "../../captures/captures.schemas";
import {
  createCaptureSession,
  deleteCaptureSession,
  getCaptureSession,
  listCaptureSessions,
  resetCaptureSession,
  startCaptureSession,
  stopCaptureSession,
} from "../../captures/sessions.service";
import { listSnapshots } from "../../captures/trainer.service";
import { blobStore } from "../../storage/blobs";
import { jointStates } from "../../captures/joints.service";
import { startSessionLiveJoints, stopSessionLiveJoints } from "../../captures/live-joints.service";
import { liveJointsSchema } from "../../captures/captures.schemas";
import { orgProcedure, router } from "../trpc";

const ok = z.object({ ok: z.literal(true) });

export const capturesRouter = router({
  list: orgProcedure("viewer")
    .input(z.object({ limit: z.number().int().min(1).max(500).default(100) }).default({ limit: 100 }))
    .output(z.array(captureSessionSchema))
    .query(({ ctx, input }) => listCaptureSessions(ctx.db, { actor: ctx.orgActor, limit: input.limit })),
  /** One session with its counts, trainer lease, newest snapshot (its SPZ URL) and latest posted pose. */
  get: orgProcedure("viewer")
    .input(sessionIdInput)
    .output(captureSessionDetailSchema)
    .query(({ ctx, input }) => getCaptureSession(ctx.db, { actor: ctx.orgActor, sessionId: input.sessionId })),
  /** The session's snapshots, newest first: the viewer's timeline. */
  snapshots: orgProcedure("viewer")
    .input(listSnapshotsInput)
    .output(z.array(captureSnapshotSchema))
    .query(({ ctx, input }) => listSnapshots(ctx.db, { actor: ctx.orgActor, input })),
  create: orgProcedure("operator")
    .input(createCaptureInput)
    .output(captureSessionSchema)
    .mutation(({ ctx, input }) => createCaptureSession(ctx.db, { actor: ctx.orgActor, input })),
  start: orgProcedure("operator")
    .input(sessionIdInput)
    .output(captureSessionSchema)
    .mutation(({ ctx, input }) => startCaptureSession(ctx.db, { actor: ctx.orgActor, sessionId: input.sessionId })),
  stop: orgProcedure("operator")
    .input(sessionIdInput)
    .output(z.object({ session: captureSessionSchema, chunks: z.array(captureChunkSchema) }))
    .mutation(({ ctx, input }) => stopCaptureSession(ctx.db, { actor: ctx.orgActor, sessionId: input.sessionId, blobs: blobStore() })),
  /** Clears frames, chunks, joint states and snapshots; keeps the session. */
  reset: orgProcedure("operator")
    .input(sessionIdInput)
    .output(captureSessionSchema)
    .mutation(({ ctx, input }) => resetCaptureSession(ctx.db, { actor: ctx.orgActor, sessionId: input.sessionId })),
  delete: orgProcedure("admin")
    .input(sessionIdInput)
    .output(ok)
    .mutation(async ({ ctx, input }) => {
      await deleteCaptureSession(ctx.db, { actor: ctx.orgActor, sessionId: input.sessionId });
      return { ok: true as const };
    }),
  /** Follows the bound arm: its agent streams live joints, which pose the twin and are stored as the session's joint states. */
  startLive: orgProcedure("operator")
    .input(sessionIdInput)
    .output(liveJointsSchema)
    .mutation(({ ctx, input }) => startSessionLiveJoints(ctx.db, { actor: ctx.orgActor, sessionId: input.sessionId })),
  stopLive: orgProcedure("operator")
    .input(sessionIdInput)
    .output(z.object({ stopped: z.boolean() }))
    .mutation(({ ctx, input }) => stopSessionLiveJoints(ctx.db, { actor: ctx.orgActor, sessionId: input.sessionId })),
  /** A session's joint angles as they are posted (the twin on its page). */
  onJoints: orgProcedure("viewer")
    .input(sessionIdInput)
    .subscription(async function* ({ ctx, input, signal }) {
      yield* jointStates(ctx.db, { actor: ctx.orgActor, sessionId: input.sessionId, hub: ctx.hub, signal: signal!, ...streamAccessCheck(ctx.db, ctx.hub, ctx.orgActor) });
    }),
});
