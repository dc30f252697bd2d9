import type { z } from "zod";
import { isUniqueViolation, type Db, type Tx } from "../db";
import { AppError } from "../errors";
import { recordAudit } from "../audit/audit.service";
import type { OrgActor } from "../auth/roles";
import { Prisma } from "../generated/prisma/client";
import type { BlobStore } from "../storage/blob-store";
import { cancelAgentCommand } from "../hardware/commands.service";
import { releaseSessionBlobs } from "./blob-refs";
import { cameraSchema, type Camera, type captureChunkSchema, type captureSessionDetailSchema, type captureSessionSchema, type createCaptureInput, type trainerLeaseSchema } from "./captures.schemas";
import { captureLimits, type CaptureLimits } from "./limits";
import { latestJointState } from "./joints.service";
import { writeDueChunks } from "./frames.service";
import { findSession, notifySession, toSnapshotDto, withRobot, type SessionRow } from "./captures.queries";
import { sessionLiveJoints, stopSessionLiveJoints } from "./live-joints.service";

// A capture session's life: created active (one active session per organisation, the one the
// earlier endpoints act on), stopped (its last frames go into a final chunk), started again,
// reset (frames, chunks, joint states and snapshots go; the session and its trainer stay, and
// the generation changes so the trainer starts over), deleted.

export type CaptureSessionDto = z.infer<typeof captureSessionSchema>;

export function trainerLease(row: Pick<SessionRow, "trainerClaimId" | "trainerName" | "trainerClaimedAt" | "trainerSeenAt" | "trainerIteration" | "trainerGaussians" | "trainerProgress">, silentMs: number, now = Date.now()): z.infer<typeof trainerLeaseSchema> {
  const state = !row.trainerClaimId ? "none" : row.trainerSeenAt && now - row.trainerSeenAt.getTime() < silentMs ? "active" : "silent";
  return {
    state,
    name: row.trainerName,
    claimedAt: row.trainerClaimedAt,
    lastSeenAt: row.trainerSeenAt,
    iteration: row.trainerIteration,
    gaussians: row.trainerGaussians,
    progress: row.trainerProgress,
  };
}

export function toSessionDto(row: SessionRow, silentMs: number): CaptureSessionDto {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    chunkSize: row.chunkSize,
    robotId: row.robotId,
    robotName: row.robot?.name ?? null,
    generation: row.generation,
    lastSeq: row.lastSeq,
    frameCount: row.frameCount,
    chunkCount: row.chunkCount,
    snapshotCount: row.snapshotCount,
    trainer: trainerLease(row, silentMs),
    createdBy: row.createdBy,
    createdAt: row.createdAt,
    stoppedAt: row.stoppedAt,
  };
}

export function toChunkDto(row: Prisma.CaptureChunkGetPayload<object>): z.infer<typeof captureChunkSchema> {
  return { index: row.index, firstSeq: row.firstSeq, lastSeq: row.lastSeq, frameCount: row.frameCount, sha256: row.sha256, bytes: row.bytes, createdAt: row.createdAt };
}

/**
 * Whether the session is the actor's organisation's (404 otherwise), for a route to ask before
 * it reads a body: a caller from elsewhere learns nothing from how its input is judged.
 */
export async function requireCaptureSession(db: Db, { actor, sessionId }: { actor: OrgActor; sessionId: string }): Promise<void> {
  await findSession(db, actor, sessionId);
}

async function describeActive(db: Tx, orgId: string): Promise<string> {
  const active = await db.captureSession.findFirst({ where: { orgId, status: "active" }, select: { name: true } });
  return active ? `"${active.name}" is capturing` : "another session is capturing";
}


export async function getCaptureSession(db: Db, { actor, sessionId, limits = captureLimits() }: { actor: OrgActor; sessionId: string; limits?: CaptureLimits }): Promise<z.infer<typeof captureSessionDetailSchema>> {
  const row = await findSession(db, actor, sessionId);
  const [latest, joints, live] = await Promise.all([db.captureSnapshot.findFirst({ where: { sessionId }, orderBy: { createdAt: "desc" } }), latestJointState(db, sessionId), sessionLiveJoints(db, row.liveCommandId)]);
  const camera: Camera | null = row.camera ? (cameraSchema.safeParse(row.camera).data ?? null) : null;
  return { ...toSessionDto(row, limits.trainerSilentMs), latestSnapshot: latest ? toSnapshotDto(latest) : null, latestJoints: joints, live, camera };
}

export async function listCaptureSessions(db: Db, { actor, limit = 100, limits = captureLimits() }: { actor: OrgActor; limit?: number; limits?: CaptureLimits }): Promise<CaptureSessionDto[]> {
  const rows = await db.captureSession.findMany({ where: { orgId: actor.orgId }, include: withRobot, orderBy: { createdAt: "desc" }, take: limit });
  return rows.map((row) => toSessionDto(row, limits.trainerSilentMs));
}

/** A new session, active at once; refused while another of the organisation's sessions is active. */
export async function createCaptureSession(db: Db, { actor, input, limits = captureLimits() }: { actor: OrgActor; input: z.output<typeof createCaptureInput>; limits?: CaptureLimits }): Promise<CaptureSessionDto> {
  if (input.robotId) {
    const robot = await db.robot.findFirst({ where: { id: input.robotId, orgId: actor.orgId }, select: { id: true } });
    if (!robot) throw new AppError("NOT_FOUND", "No such arm in this organisation; pick one from the Robots page, or leave the arm out");
  }
  try {
    const row = await db.$transaction(async (tx) => {
      const created = await tx.captureSession.create({
        data: { orgId: actor.orgId, name: input.name, chunkSize: input.chunkSize, robotId: input.robotId, createdById: actor.userId, createdBy: actor.label },
        include: withRobot,
      });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "capture.create", target: input.name, data: { sessionId: created.id, chunkSize: input.chunkSize, robotId: input.robotId } });
      return created;
    });
    return toSessionDto(row, limits.trainerSilentMs);
  } catch (error) {
    if (isUniqueViolation(error)) throw new AppError("CONFLICT", `Only one capture session captures at a time and ${await describeActive(db, actor.orgId)}; stop it first`);
    throw error;
  }
}

/** A stopped session takes frames again (after the ones it has). */
export async function startCaptureSession(db: Db, { actor, sessionId, limits = captureLimits() }: { actor: OrgActor; sessionId: string; limits?: CaptureLimits }): Promise<CaptureSessionDto> {
  const session = await findSession(db, actor, sessionId);
  if (session.status === "active") return toSessionDto(session, limits.trainerSilentMs);
  try {
    const row = await db.$transaction(async (tx) => {
      const updated = await tx.captureSession.update({ where: { id: session.id }, data: { status: "active", stoppedAt: null }, include: withRobot });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "capture.start", target: session.name, data: { sessionId } });
      await notifySession(tx, sessionId);
      return updated;
    });
    return toSessionDto(row, limits.trainerSilentMs);
  } catch (error) {
    if (isUniqueViolation(error)) throw new AppError("CONFLICT", `Only one capture session captures at a time and ${await describeActive(db, actor.orgId)}; stop it first`);
    throw error;
  }
}

/**
 * Stops taking frames. Frames not yet in a chunk go into a last, shorter one, so every frame
 * is in a chunk once a session is stopped. Stopping a stopped session changes nothing.
 */
export async function stopCaptureSession(
  db: Db,
  { actor, sessionId, blobs, limits = captureLimits() }: { actor: OrgActor; sessionId: string; blobs: BlobStore; limits?: CaptureLimits },
): Promise<{ session: CaptureSessionDto; chunks: z.infer<typeof captureChunkSchema>[] }> {
  const session = await findSession(db, actor, sessionId);
  if (session.status === "active") {
    await db.$transaction(async (tx) => {
      const { count } = await tx.captureSession.updateMany({ where: { id: session.id, status: "active" }, data: { status: "stopped", stoppedAt: new Date() } });
      if (count) {
        await recordAudit(tx, { orgId: actor.orgId, actor, action: "capture.stop", target: session.name, data: { sessionId, frames: session.frameCount } });
        await notifySession(tx, sessionId);
      }
    });
  }
  // The arm's port is freed: a stopped session takes no joints.
  await stopSessionLiveJoints(db, { actor, sessionId });
  // Frames that were being stored as it stopped commit first (they hold the session's row).
  await writeDueChunks(db, { sessionId, blobs, isFinal: true });
  const [row, chunks] = await Promise.all([findSession(db, actor, sessionId), db.captureChunk.findMany({ where: { sessionId }, orderBy: { index: "asc" } })]);
  return { session: toSessionDto(row, limits.trainerSilentMs), chunks: chunks.map(toChunkDto) };
}

/**
 * Clears the session's frames, chunks, joint states and snapshots; keeps the session, its
 * settings and its trainer's lease. Sequence numbers go on from where they were.
 */
export async function resetCaptureSession(db: Db, { actor, sessionId, limits = captureLimits() }: { actor: OrgActor; sessionId: string; limits?: CaptureLimits }): Promise<CaptureSessionDto> {
  const session = await findSession(db, actor, sessionId);
  const row = await db.$transaction(
    async (tx) => {
      // The row lock waits for frames being stored to commit, and keeps new ones out until done.
      await tx.$queryRaw`SELECT 1 FROM "CaptureSession" WHERE "id" = ${session.id}::uuid FOR UPDATE`;
      await releaseSessionBlobs(tx, session.id);
      const frames = await tx.captureFrame.deleteMany({ where: { sessionId } });
      const chunks = await tx.captureChunk.deleteMany({ where: { sessionId } });
      const snapshots = await tx.captureSnapshot.deleteMany({ where: { sessionId } });
      await tx.captureJointState.deleteMany({ where: { sessionId } });
      const current = await tx.captureSession.findUniqueOrThrow({ where: { id: session.id }, select: { lastSeq: true } });
      const updated = await tx.captureSession.update({
        where: { id: session.id },
        data: { generation: { increment: 1 }, frameCount: 0, chunkCount: 0, chunkedThroughSeq: current.lastSeq, snapshotCount: 0, trainerIteration: null, trainerGaussians: null, trainerProgress: null },
        include: withRobot,
      });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "capture.reset", target: session.name, data: { sessionId, frames: frames.count, chunks: chunks.count, snapshots: snapshots.count } });
      await notifySession(tx, sessionId);
      return updated;
    },
    { timeout: 60_000 },
  );
  return toSessionDto(row, limits.trainerSilentMs);
}

/** Removes the session and everything it holds; its blobs go with the next sweep. */
export async function deleteCaptureSession(db: Db, { actor, sessionId }: { actor: OrgActor; sessionId: string }): Promise<void> {
  const session = await findSession(db, actor, sessionId);
  await db.$transaction(
    async (tx) => {
      await tx.$queryRaw`SELECT 1 FROM "CaptureSession" WHERE "id" = ${session.id}::uuid FOR UPDATE`;
      await releaseSessionBlobs(tx, session.id);
      await tx.captureSession.delete({ where: { id: session.id } });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "capture.delete", target: session.name, data: { sessionId, frames: session.frameCount, snapshots: session.snapshotCount } });
      await notifySession(tx, sessionId);
    },
    { timeout: 60_000 },
  );
  if (session.liveCommandId) await cancelAgentCommand(db, { actor, commandId: session.liveCommandId }).catch(() => {});
}
