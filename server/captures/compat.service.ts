import type { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { Prisma } from "../generated/prisma/client";
import type { BlobStore } from "../storage/blob-store";
import { readFrameUpload, type UploadBody } from "./body";
import { inspectImage } from "./images";
import type { compatJointAnglesInput } from "./captures.schemas";
import { createCaptureSession, resetCaptureSession, stopCaptureSession, trainerLease } from "./sessions.service";
import { addFrame } from "./frames.service";
import { postJointState } from "./joints.service";
import { findSnapshotFile, type SnapshotFile } from "./trainer.service";
import { captureLimits, type CaptureLimits } from "./limits";

// The earlier live-capture server's endpoints, for the clients written against it. It held
// one capture in memory; here each endpoint acts on the organisation's active session. Those
// that only read (status, get-ply, health) fall back to the newest session, so a client can
// still fetch the result after /stop-training. The first frame sent while no session is
// active starts one, as the earlier server started capturing on its first frame.

async function activeSession(db: Db, orgId: string) {
  return db.captureSession.findFirst({ where: { orgId, status: "active" } });
}

/** The active session, else the newest one. */
async function currentSession(db: Db, orgId: string) {
  return (await activeSession(db, orgId)) ?? (await db.captureSession.findFirst({ where: { orgId }, orderBy: { createdAt: "desc" } }));
}

async function startSession(db: Db, actor: OrgActor, limits: CaptureLimits): Promise<string> {
  const name = `Live capture ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`;
  try {
    return (await createCaptureSession(db, { actor, input: { name, chunkSize: 50, robotId: null }, limits })).id;
  } catch (error) {
    // Another frame started one at the same moment.
    if (error instanceof AppError && error.code === "CONFLICT") {
      const raced = await activeSession(db, actor.orgId);
      if (raced) return raced.id;
    }
    throw error;
  }
}

/** `POST /upload-frame` → `{success, frame_count, chunks_uploaded}`. */
export async function compatUploadFrame(db: Db, { actor, upload, blobs, limits = captureLimits() }: { actor: OrgActor; upload: UploadBody; blobs: BlobStore; limits?: CaptureLimits }) {
  const found = await activeSession(db, actor.orgId);
  if (found) {
    const receipt = await addFrame(db, { actor, sessionId: found.id, upload, blobs, limits });
    return { success: true, frame_count: receipt.frameCount, chunks_uploaded: receipt.chunkCount };
  }
  // A frame that is refused starts no session.
  const bytes = await readFrameUpload(upload, limits.maxFrameBytes);
  inspectImage(bytes);
  const sessionId = await startSession(db, actor, limits);
  const receipt = await addFrame(db, { actor, sessionId, upload: bytes, blobs, limits });
  return { success: true, frame_count: receipt.frameCount, chunks_uploaded: receipt.chunkCount };
}

/**
 * `POST /update-joint-angles` → `{success, joint_angles}`. With no active session the angles
 * are answered but not kept (`stored: false`): a robot loop that posts all day must not start
 * a session the moment one is stopped.
 */
export async function compatUpdateJointAngles(db: Db, { actor, input, limits = captureLimits() }: { actor: OrgActor; input: z.output<typeof compatJointAnglesInput>; limits?: CaptureLimits }) {
  const session = await activeSession(db, actor.orgId);
  if (!session) return { success: true, joint_angles: input.joint_angles, stored: false };
  await postJointState(db, { actor, sessionId: session.id, input: { joint_angles: input.joint_angles }, limits });
  return { success: true, joint_angles: input.joint_angles, stored: true };
}

/** `GET /status`: the counts and the trainer's progress, for the active (else newest) session. */
export async function compatStatus(db: Db, { actor, limits = captureLimits() }: { actor: OrgActor; limits?: CaptureLimits }) {
  const session = await currentSession(db, actor.orgId);
  if (!session) {
    return { frame_count: 0, gaussian_count: 0, progress: 0, chunks_uploaded: 0, training: false, iteration: 0, snapshots: 0, trainer: null, trainer_state: "none", session_id: null, session_status: null };
  }
  const lease = trainerLease(session, limits.trainerSilentMs);
  const newest = await db.captureSnapshot.findFirst({ where: { sessionId: session.id }, orderBy: { createdAt: "desc" }, select: { splats: true } });
  return {
    frame_count: session.frameCount,
    gaussian_count: session.trainerGaussians ?? newest?.splats ?? 0,
    progress: session.trainerProgress ?? 0,
    chunks_uploaded: session.chunkCount,
    training: session.status === "active" && lease.state === "active",
    iteration: session.trainerIteration ?? 0,
    snapshots: session.snapshotCount,
    trainer: lease.name,
    trainer_state: lease.state,
    session_id: session.id,
    session_status: session.status,
  };
}

/** `GET /get-ply`: the newest snapshot of the active (else newest) session, as binary PLY. */
export async function compatGetPly(db: Db, { actor, blobs }: { actor: OrgActor; blobs: BlobStore }): Promise<SnapshotFile> {
  const session = await currentSession(db, actor.orgId);
  if (!session) throw new AppError("NOT_FOUND", "No capture session yet: send frames to /upload-frame and run a trainer first");
  return findSnapshotFile(db, { actor, sessionId: session.id, format: "ply", blobs });
}

/** `POST /stop-training` → `{success, chunks, complete}`: stops the active session; again, answers for the newest. */
export async function compatStopTraining(db: Db, { actor, blobs, limits = captureLimits() }: { actor: OrgActor; blobs: BlobStore; limits?: CaptureLimits }) {
  const session = await currentSession(db, actor.orgId);
  if (!session) return { success: true, chunks: [], complete: true, frame_count: 0 };
  const stopped = await stopCaptureSession(db, { actor, sessionId: session.id, blobs, limits });
  return {
    success: true,
    chunks: stopped.chunks.map((c) => ({ index: c.index, first_seq: c.firstSeq, last_seq: c.lastSeq, frame_count: c.frameCount, sha256: c.sha256, url: `/api/captures/${session.id}/chunks/${c.index}` })),
    complete: true,
    frame_count: stopped.session.frameCount,
  };
}

/** `POST /reset` → `{success}`: clears the active session; with none active there is nothing to clear. */
export async function compatReset(db: Db, { actor, limits = captureLimits() }: { actor: OrgActor; limits?: CaptureLimits }) {
  const session = await activeSession(db, actor.orgId);
  if (!session) return { success: true, message: "No capture session is active; nothing to reset" };
  try {
    await resetCaptureSession(db, { actor, sessionId: session.id, limits });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") return { success: true, message: "The capture session was removed meanwhile; nothing to reset" };
    throw error;
  }
  return { success: true, message: `Capture session "${session.name}" was reset` };
}

/** `GET /health` → `{status, trainer_ready}`: trainer_ready when a trainer holds a live lease on the current session. */
export async function compatHealth(db: Db, { actor, limits = captureLimits() }: { actor: OrgActor; limits?: CaptureLimits }) {
  const session = await currentSession(db, actor.orgId);
  return { status: "healthy", trainer_ready: session ? trainerLease(session, limits.trainerSilentMs).state === "active" : false };
}
