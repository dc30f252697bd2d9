import crypto from "node:crypto";
import type { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import type { BlobStore } from "../storage/blob-store";
import { lockBlobNames, recordingBlobs, releaseBlobs } from "./blob-refs";
import { readBounded, type UploadBody } from "./body";
import type { Camera, captureSnapshotSchema, claimInput, heartbeatInput, leaseAnswerSchema, listSnapshotsInput } from "./captures.schemas";
import { findSession, toSnapshotDto, type SessionRow } from "./captures.queries";
import { captureLimits, type CaptureLimits } from "./limits";
import { writePly } from "./ply";
import { storeSnapshot } from "./snapshots.service";
import { decodeSpz } from "./spz";

// A trainer (a GPU process the team runs, anywhere that reaches the portal) holds a lease on
// a session: it claims it, sends a heartbeat with its progress, reads frames after its cursor
// and pushes snapshots. The lease is the claim id it was given; it lapses when the trainer is
// silent for CAPTURE_TRAINER_SILENT_MS, and then another trainer may claim the session. The
// lease lives in the session's row, so any web process can check it.

type LeaseAnswer = z.infer<typeof leaseAnswerSchema>;
type SnapshotDto = z.infer<typeof captureSnapshotSchema>;

function leaseAnswer(row: Pick<SessionRow, "id" | "status" | "generation" | "lastSeq" | "frameCount">, claimId: string, seenAt: Date, silentMs: number): LeaseAnswer {
  return {
    claimId,
    sessionId: row.id,
    status: row.status,
    generation: row.generation,
    lastSeq: row.lastSeq,
    frameCount: row.frameCount,
    expiresAt: new Date(seenAt.getTime() + silentMs).toISOString(),
    silentAfterMs: silentMs,
  };
}

/**
 * A snapshot is held in memory whole while it is checked and converted (up to
 * CAPTURE_MAX_SNAPSHOT_BYTES, and its decoded splats besides), so a web process works on two
 * at a time; the others wait with their bodies unread, which keeps them in the network's buffers.
 */
const SNAPSHOTS_AT_ONCE = 2;
let snapshotsInProgress = 0;
const waitingForTurn: (() => void)[] = [];

async function storing<T>(work: () => Promise<T>): Promise<T> {
  if (snapshotsInProgress >= SNAPSHOTS_AT_ONCE) await new Promise<void>((resolve) => waitingForTurn.push(resolve));
  else snapshotsInProgress++;
  try {
    return await work();
  } finally {
    const next = waitingForTurn.shift();
    if (next) next();
    else snapshotsInProgress--;
  }
}

const secondsAgo = (at: Date | null) => (at ? `${Math.max(0, Math.round((Date.now() - at.getTime()) / 1000))} s ago` : "never");

/**
 * A lease on the session for this trainer. Refused (409) while another trainer's lease is
 * live; the same trainer (same user, same name) claiming again, after a restart, takes its
 * lease back at once.
 */
export async function claimSession(
  db: Db,
  { actor, sessionId, input, limits = captureLimits() }: { actor: OrgActor; sessionId: string; input: z.output<typeof claimInput>; limits?: CaptureLimits },
): Promise<LeaseAnswer> {
  const session = await findSession(db, actor, sessionId);
  const now = new Date();
  const claimId = crypto.randomUUID();
  const { count } = await db.captureSession.updateMany({
    where: {
      id: session.id,
      OR: [{ trainerClaimId: null }, { trainerSeenAt: null }, { trainerSeenAt: { lt: new Date(now.getTime() - limits.trainerSilentMs) } }, { trainerUserId: actor.userId, trainerName: input.trainer }],
    },
    data: { trainerClaimId: claimId, trainerName: input.trainer, trainerUserId: actor.userId, trainerClaimedAt: now, trainerSeenAt: now, trainerIteration: null, trainerGaussians: null, trainerProgress: null },
  });
  const row = await findSession(db, actor, sessionId);
  if (!count) {
    throw new AppError(
      "CONFLICT",
      `Trainer "${row.trainerName}" holds capture session "${row.name}" (last heard from ${secondsAgo(row.trainerSeenAt)}); its lease lapses after ${Math.round(limits.trainerSilentMs / 1000)} s without a heartbeat, then claim again`,
    );
  }
  return leaseAnswer(row, claimId, now, limits.trainerSilentMs);
}

/** Why a claim id no longer holds the session. */
function lostLease(row: SessionRow): AppError {
  if (!row.trainerClaimId) return new AppError("CONFLICT", `Your lease on capture session "${row.name}" was released; claim it again`);
  return new AppError("CONFLICT", `Your lease on capture session "${row.name}" lapsed and trainer "${row.trainerName}" claimed it ${secondsAgo(row.trainerClaimedAt)}; claim it again once that trainer is silent`);
}

/** Keeps the lease alive and records the trainer's progress; a lapsed lease nobody took is revived. */
export async function heartbeat(
  db: Db,
  { actor, sessionId, input, limits = captureLimits() }: { actor: OrgActor; sessionId: string; input: z.output<typeof heartbeatInput>; limits?: CaptureLimits },
): Promise<LeaseAnswer> {
  await findSession(db, actor, sessionId);
  const now = new Date();
  const { count } = await db.captureSession.updateMany({
    where: { id: sessionId, trainerClaimId: input.claimId },
    data: { trainerSeenAt: now, trainerIteration: input.iteration, trainerGaussians: input.gaussians, ...(input.progress !== undefined ? { trainerProgress: input.progress } : {}) },
  });
  const row = await findSession(db, actor, sessionId);
  if (!count) throw lostLease(row);
  return leaseAnswer(row, input.claimId, now, limits.trainerSilentMs);
}

/** Gives the lease up (a trainer that exits cleanly), so another may claim at once. */
export async function releaseLease(db: Db, { actor, sessionId, claimId }: { actor: OrgActor; sessionId: string; claimId: string }): Promise<void> {
  await findSession(db, actor, sessionId);
  const { count } = await db.captureSession.updateMany({
    where: { id: sessionId, trainerClaimId: claimId },
    data: { trainerClaimId: null, trainerUserId: null, trainerSeenAt: null, trainerClaimedAt: null, trainerProgress: null },
  });
  if (!count) throw lostLease(await findSession(db, actor, sessionId));
}

/**
 * Takes a snapshot from the lease holder: the body (PLY or SPZ, at most
 * CAPTURE_MAX_SNAPSHOT_BYTES) is checked and converted by storeSnapshot — a file it refuses
 * stores nothing — then recorded, the oldest snapshots past CAPTURE_MAX_SNAPSHOTS going.
 */
export async function pushSnapshot(
  db: Db,
  {
    actor, sessionId, claimId, iteration, generation, camera, upload, blobs, limits = captureLimits(), signal,
  }: { actor: OrgActor; sessionId: string; claimId: string; iteration: number; generation?: number; camera?: Camera; upload: UploadBody; blobs: BlobStore; limits?: CaptureLimits; signal?: AbortSignal },
): Promise<SnapshotDto> {
  const session = await findSession(db, actor, sessionId);
  // The lease is checked before the body is read, and again when the snapshot is recorded.
  if (session.trainerClaimId !== claimId) throw lostLease(session);
  if (generation !== undefined && generation !== session.generation) throw resetSince(session);
  const meta = await storing(async () => {
    const file = await readBounded(upload, limits.maxSnapshotBytes, "snapshot", "CAPTURE_MAX_SNAPSHOT_BYTES");
    if (file.byteLength === 0) throw new AppError("BAD_REQUEST", "The snapshot is empty; send the PLY or SPZ file as the request body");
    return storeSnapshot({ blobs, file, signal });
  });
  const now = new Date();
  const result = await recordingBlobs(db, [meta.source.sha256, meta.spz.sha256], () => db.$transaction(async (tx) => {
    await lockBlobNames(tx, [meta.source.sha256, meta.spz.sha256]);
    const [row] = await tx.$queryRaw<{ trainerClaimId: string | null; trainerName: string | null; generation: number; lastSeq: number; frameCount: number }[]>`
      SELECT "trainerClaimId"::text, "trainerName", "generation", "lastSeq", "frameCount" FROM "CaptureSession" WHERE "id" = ${session.id}::uuid FOR UPDATE`;
    if (!row || row.trainerClaimId !== claimId || (generation !== undefined && row.generation !== generation)) {
      await releaseBlobs(tx, [meta.source.sha256, meta.spz.sha256]);
      return null;
    }
    // A sweep may have removed a blob this snapshot shares with one a reset let go of.
    if (!(await blobs.has(meta.source.sha256)) || !(await blobs.has(meta.spz.sha256))) throw new AppError("CONFLICT", "The snapshot's file was cleared by a reset while it was stored; push it again");
    const created = await tx.captureSnapshot.create({
      data: {
        orgId: actor.orgId, sessionId: session.id, iteration, format: meta.format, splats: meta.splats, shDegree: meta.shDegree,
        sourceSha256: meta.source.sha256, sourceBytes: meta.source.bytes, spzSha256: meta.spz.sha256, spzBytes: meta.spz.bytes,
        bounds: meta.bounds, trainerName: row.trainerName ?? "trainer", lastSeq: row.lastSeq, frameCount: row.frameCount,
      },
    });
    // Past the limit the oldest go; their blobs wait for the sweep.
    const old = await tx.captureSnapshot.findMany({ where: { sessionId: session.id }, orderBy: [{ createdAt: "desc" }, { id: "desc" }], skip: limits.maxSnapshots, select: { id: true, sourceSha256: true, spzSha256: true } });
    if (old.length) {
      await releaseBlobs(tx, old.flatMap((s) => [s.sourceSha256, s.spzSha256]));
      await tx.captureSnapshot.deleteMany({ where: { id: { in: old.map((s) => s.id) } } });
    }
    await tx.captureSession.update({
      where: { id: session.id },
      data: { snapshotCount: { increment: 1 - old.length }, trainerSeenAt: now, trainerIteration: iteration, trainerGaussians: meta.splats, ...(camera ? { camera } : {}) },
    });
    return created;
  }));
  if (!result) {
    const row = await findSession(db, actor, sessionId);
    throw row.trainerClaimId !== claimId ? lostLease(row) : resetSince(row);
  }
  return toSnapshotDto(result);
}

function resetSince(row: SessionRow): AppError {
  return new AppError("CONFLICT", `Capture session "${row.name}" was reset (it is now at generation ${row.generation}); its frames before the reset are gone, so start training over from the new frames`);
}

/** The session's snapshots, newest first (the viewer's timeline). */
export async function listSnapshots(db: Db, { actor, input }: { actor: OrgActor; input: z.output<typeof listSnapshotsInput> }): Promise<SnapshotDto[]> {
  await findSession(db, actor, input.sessionId);
  let cursor: { createdAt: Date; id: string } | null = null;
  if (input.before) {
    cursor = await db.captureSnapshot.findFirst({ where: { id: input.before, sessionId: input.sessionId }, select: { createdAt: true, id: true } });
    if (!cursor) throw new AppError("NOT_FOUND", "No such snapshot in this session");
  }
  const rows = await db.captureSnapshot.findMany({
    where: { sessionId: input.sessionId, ...(cursor ? { OR: [{ createdAt: { lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { lt: cursor.id } }] } : {}) },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: input.limit,
  });
  return rows.map(toSnapshotDto);
}

/** One snapshot file: a stored blob, or (a PLY asked of an SPZ upload) converted now. */
export type SnapshotFile = { kind: "blob"; sha256: string; format: "spz" | "ply" } | { kind: "converted"; bytes: Buffer; etag: string };

export async function findSnapshotFile(
  db: Db,
  { actor, sessionId, snapshotId, format, blobs }: { actor: OrgActor; sessionId: string; snapshotId?: string; format: "spz" | "ply"; blobs: BlobStore },
): Promise<SnapshotFile> {
  await findSession(db, actor, sessionId);
  const snapshot = snapshotId
    ? await db.captureSnapshot.findFirst({ where: { id: snapshotId, sessionId } })
    : await db.captureSnapshot.findFirst({ where: { sessionId }, orderBy: [{ createdAt: "desc" }, { id: "desc" }] });
  if (!snapshot) throw new AppError("NOT_FOUND", snapshotId ? "No such snapshot in this session (it may have been cleared by a reset)" : "This session has no snapshot yet: no trainer has pushed one");
  if (format === "spz") return { kind: "blob", sha256: snapshot.spzSha256, format: "spz" };
  if (snapshot.format === "ply") return { kind: "blob", sha256: snapshot.sourceSha256, format: "ply" };
  // An SPZ upload has no PLY of its own; written from the decoded splats when asked for.
  const chunks: Buffer[] = [];
  for await (const chunk of await blobs.get(snapshot.spzSha256)) chunks.push(chunk as Buffer);
  const cloud = await decodeSpz(Buffer.concat(chunks));
  return { kind: "converted", bytes: writePly(cloud), etag: `"${snapshot.spzSha256}-ply"` };
}
