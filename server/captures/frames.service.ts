import { Readable } from "node:stream";
import type { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { consumeRateLimit } from "../auth/rate-limit";
import type { BlobStore } from "../storage/blob-store";
import { ensureBlob, lockBlobNames, recordingBlobs, releaseBlobs } from "./blob-refs";
import { readFrameUpload, type UploadBody } from "./body";
import type { Camera, ChunkManifest, frameInfoSchema, frameReceiptSchema, framesPageSchema } from "./captures.schemas";
import { CAPTURE_CHANNEL, findSession, framePath, notifySession, type SessionRow } from "./captures.queries";
import { inspectImage } from "./images";
import { captureLimits, type CaptureLimits } from "./limits";

// Frames arrive one request each, from a camera on the robot's computer or the earlier
// clients. Each is checked from its bytes, stored as a blob as it arrives, and numbered by the
// session (a cursor trainers read from). Every chunkSize frames a chunk manifest is written.
// Nothing about a session lives in a web process's memory: the numbering is the session row,
// the chunk bookkeeping is conditional updates, and a trainer waiting on another process is
// woken through NOTIFY.

type FrameReceipt = z.infer<typeof frameReceiptSchema>;

const stoppedMessage = (session: Pick<SessionRow, "name">) => `Capture session "${session.name}" is stopped and takes no frames; start it again, or create a new session`;

/** Checks, stores and numbers one frame; writes a chunk when this frame completes one. */
export async function addFrame(
  db: Db,
  { actor, sessionId, upload, t, camera, blobs, limits = captureLimits() }: { actor: OrgActor; sessionId: string; upload: UploadBody | Uint8Array; t?: number; camera?: Camera; blobs: BlobStore; limits?: CaptureLimits },
): Promise<FrameReceipt> {
  const session = await findSession(db, actor, sessionId);
  if (session.status !== "active") throw new AppError("CONFLICT", stoppedMessage(session));
  // Counted before the body is read: a sender past the rate costs no memory.
  await consumeRateLimit(db, `capture:frames:${session.id}`, { name: "capture_frames", what: `frames for this capture session (CAPTURE_FRAMES_PER_SECOND allows ${limits.framesPerSecond} a second)`, limit: limits.framesPerSecond, windowMs: 1000 });
  const bytes = upload instanceof Uint8Array ? upload : await readFrameUpload(upload, limits.maxFrameBytes);
  const image = inspectImage(bytes);
  const stored = await blobs.put(Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]));
  const takenAt = new Date(t ?? Date.now());
  const numbered = await recordingBlobs(db, [stored.sha256], () => db.$transaction(async (tx) => {
    await lockBlobNames(tx, [stored.sha256]);
    await ensureBlob(blobs, stored.sha256, bytes);
    // The row lock this takes orders frames: one frame's number is committed before the next is
    // taken. The camera that took it, when the sender knows, is kept: the viewer draws its frustum.
    const [row] = await tx.$queryRaw<{ lastSeq: number; frameCount: number; chunkCount: number; chunkedThroughSeq: number; chunkSize: number }[]>`
      UPDATE "CaptureSession" SET "lastSeq" = "lastSeq" + 1, "frameCount" = "frameCount" + 1, "camera" = COALESCE(${camera ? JSON.stringify(camera) : null}::jsonb, "camera")
      WHERE "id" = ${session.id}::uuid AND "status" = 'active'
      RETURNING "lastSeq", "frameCount", "chunkCount", "chunkedThroughSeq", "chunkSize"`;
    if (!row) throw new AppError("CONFLICT", stoppedMessage(session));
    await tx.captureFrame.create({ data: { orgId: actor.orgId, sessionId: session.id, seq: row.lastSeq, sha256: stored.sha256, bytes: stored.bytes, ...image, takenAt } });
    await notifySession(tx, session.id);
    return row;
  }));
  let chunkCount = numbered.chunkCount;
  if (numbered.lastSeq - numbered.chunkedThroughSeq >= numbered.chunkSize) chunkCount = await writeDueChunks(db, { sessionId: session.id, blobs });
  return { sessionId: session.id, seq: numbered.lastSeq, sha256: stored.sha256, ...image, frameCount: numbered.frameCount, chunkCount };
}

interface FrameWithJoints {
  seq: number;
  sha256: string;
  bytes: number;
  format: string;
  width: number;
  height: number;
  takenAt: Date;
  jointsAt: Date | null;
  angles: number[] | null;
}

/** The frames after `afterSeq`, each with the posted joint state nearest it in time. */
async function framesWithNearestJoints(db: Db, sessionId: string, afterSeq: number, limit: number): Promise<FrameWithJoints[]> {
  return db.$queryRaw<FrameWithJoints[]>`
    SELECT f."seq", f."sha256", f."bytes", f."format", f."width", f."height", f."takenAt", j."takenAt" AS "jointsAt", j."angles"
    FROM "CaptureFrame" f
    LEFT JOIN LATERAL (
      SELECT c."takenAt", c."angles" FROM (
        (SELECT "takenAt", "angles" FROM "CaptureJointState" WHERE "sessionId" = f."sessionId" AND "takenAt" <= f."takenAt" ORDER BY "takenAt" DESC LIMIT 1)
        UNION ALL
        (SELECT "takenAt", "angles" FROM "CaptureJointState" WHERE "sessionId" = f."sessionId" AND "takenAt" > f."takenAt" ORDER BY "takenAt" ASC LIMIT 1)
      ) c
      ORDER BY abs(extract(epoch FROM c."takenAt" - f."takenAt")) ASC, c."takenAt" ASC
      LIMIT 1
    ) j ON true
    WHERE f."sessionId" = ${sessionId}::uuid AND f."seq" > ${afterSeq}
    ORDER BY f."seq" ASC
    LIMIT ${limit}`;
}

/**
 * Writes the chunk manifests that are due: one for every chunkSize frames not yet in one, and
 * with `isFinal` (the session stopped) one more for whatever is left. Several processes may
 * try the same chunk at once; a conditional update lets one record it. Returns the session's
 * chunk count.
 */
export async function writeDueChunks(db: Db, { sessionId, blobs, isFinal = false }: { sessionId: string; blobs: BlobStore; isFinal?: boolean }): Promise<number> {
  for (;;) {
    const session = await db.captureSession.findUnique({ where: { id: sessionId }, select: { orgId: true, lastSeq: true, chunkedThroughSeq: true, chunkSize: true, chunkCount: true, generation: true } });
    if (!session) return 0;
    const pending = session.lastSeq - session.chunkedThroughSeq;
    if (pending <= 0 || (pending < session.chunkSize && !isFinal)) return session.chunkCount;
    const frames = await framesWithNearestJoints(db, sessionId, session.chunkedThroughSeq, session.chunkSize);
    if (!frames.length || (frames.length < session.chunkSize && !isFinal)) return session.chunkCount;
    const index = session.chunkCount + 1;
    const manifest: ChunkManifest = {
      format: "gantry-capture-chunk/1",
      sessionId,
      generation: session.generation,
      index,
      frames: frames.map((f) => ({
        seq: f.seq,
        sha256: f.sha256,
        bytes: f.bytes,
        format: f.format === "png" ? "png" : "jpeg",
        width: f.width,
        height: f.height,
        t: f.takenAt.getTime(),
        joints: f.jointsAt && f.angles ? { t: f.jointsAt.getTime(), angles: f.angles } : null,
      })),
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const stored = await blobs.put(Readable.from([bytes]));
    const first = frames[0].seq;
    const last = frames[frames.length - 1].seq;
    const isRecorded = await recordingBlobs(db, [stored.sha256], () => db.$transaction(async (tx) => {
      await lockBlobNames(tx, [stored.sha256]);
      const [won] = await tx.$queryRaw<{ chunkCount: number }[]>`
        UPDATE "CaptureSession" SET "chunkedThroughSeq" = ${last}, "chunkCount" = "chunkCount" + 1
        WHERE "id" = ${sessionId}::uuid AND "chunkedThroughSeq" = ${session.chunkedThroughSeq} AND "generation" = ${session.generation}
        RETURNING "chunkCount"`;
      if (!won) {
        // Another request wrote this chunk, or the session was reset meanwhile.
        await releaseBlobs(tx, [stored.sha256]);
        return false;
      }
      await ensureBlob(blobs, stored.sha256, bytes);
      await tx.captureChunk.create({ data: { orgId: session.orgId, sessionId, index: won.chunkCount, firstSeq: first, lastSeq: last, frameCount: frames.length, sha256: stored.sha256, bytes: stored.bytes } });
      return true;
    }));
    if (!isRecorded) continue;
  }
}

/** Anything that can wake a waiting trainer: the process's LISTEN hub. */
export interface CaptureWakeSource {
  listen(channel: string, listener: (payload: string | null) => void): () => void;
  ensureConnected(): Promise<void>;
}

/** How often a waiting request looks at the database even without a notification. */
const RECHECK_MS = 5000;

/**
 * The frames after the cursor (metadata and a URL each). With `wait`, a request that finds
 * none waits up to that many seconds for one — or for the session to stop, be reset or go —
 * woken by a NOTIFY from whichever process stored it.
 */
export async function listFrames(
  db: Db,
  { actor, sessionId, after, wait, limit, hub, signal, recheckMs = RECHECK_MS }: { actor: OrgActor; sessionId: string; after: number; wait: number; limit: number; hub: CaptureWakeSource; signal?: AbortSignal; recheckMs?: number },
): Promise<z.infer<typeof framesPageSchema>> {
  const first = await findSession(db, actor, sessionId);
  const read = async () => {
    const session = await db.captureSession.findUnique({ where: { id: sessionId }, select: { status: true, generation: true, lastSeq: true } });
    if (!session) throw new AppError("NOT_FOUND", "The capture session was deleted");
    const rows = session.lastSeq > after ? await framesWithNearestJoints(db, sessionId, after, limit) : [];
    const frames: z.infer<typeof frameInfoSchema>[] = rows.map((r) => ({
      seq: r.seq,
      sha256: r.sha256,
      bytes: r.bytes,
      format: r.format === "png" ? "png" : "jpeg",
      width: r.width,
      height: r.height,
      t: r.takenAt.getTime(),
      joints: r.jointsAt && r.angles ? { t: r.jointsAt.getTime(), angles: r.angles } : null,
      url: framePath(sessionId, r.seq),
    }));
    return { sessionId, status: session.status, generation: session.generation, frames, cursor: frames.length ? frames[frames.length - 1].seq : after, lastSeq: session.lastSeq };
  };
  // A stopped session gets no more frames: nothing to wait for.
  if (wait <= 0 || first.status !== "active") return read();
  let wake: (() => void) | null = null;
  let isWoken = false;
  const unlisten = hub.listen(CAPTURE_CHANNEL, (payload) => {
    // null: the LISTEN connection came back and notifications may have been missed.
    if (payload !== null && payload !== sessionId) return;
    isWoken = true;
    wake?.();
  });
  const onAbort = () => wake?.();
  signal?.addEventListener("abort", onAbort);
  try {
    await hub.ensureConnected();
    const deadline = Date.now() + wait * 1000;
    for (;;) {
      isWoken = false;
      const page = await read();
      const hasChanged = page.status !== first.status || page.generation !== first.generation;
      if (page.frames.length || hasChanged || signal?.aborted || Date.now() >= deadline) return page;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(recheckMs, deadline - Date.now()));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        if (isWoken || signal?.aborted) wake();
      });
      wake = null;
    }
  } finally {
    unlisten();
    signal?.removeEventListener("abort", onAbort);
  }
}

/** The blob and format of one frame of the session. */
/** A sequence number or chunk index from a URL; anything else names nothing there is. */
function parsePosition(value: string, what: string): number {
  const n = /^\d{1,9}$/.test(value) ? Number(value) : 0;
  if (n < 1) throw new AppError("NOT_FOUND", `There is no ${what} ${JSON.stringify(value.slice(0, 40))}: ${what}s are numbered 1, 2, 3, ...`);
  return n;
}

export async function findFrame(db: Db, { actor, sessionId, seq: seqParam }: { actor: OrgActor; sessionId: string; seq: string }): Promise<{ sha256: string; bytes: number; format: "jpeg" | "png" }> {
  await findSession(db, actor, sessionId);
  const seq = parsePosition(seqParam, "frame");
  const frame = await db.captureFrame.findUnique({ where: { sessionId_seq: { sessionId, seq } }, select: { sha256: true, bytes: true, format: true } });
  if (!frame) throw new AppError("NOT_FOUND", `Frame ${seq} is not in this session (it may have been cleared by a reset)`);
  return { sha256: frame.sha256, bytes: frame.bytes, format: frame.format === "png" ? "png" : "jpeg" };
}

/** The blob of one chunk manifest of the session. */
export async function findChunk(db: Db, { actor, sessionId, index: indexParam }: { actor: OrgActor; sessionId: string; index: string }): Promise<{ sha256: string }> {
  await findSession(db, actor, sessionId);
  const index = parsePosition(indexParam, "chunk");
  const chunk = await db.captureChunk.findUnique({ where: { sessionId_index: { sessionId, index } }, select: { sha256: true } });
  if (!chunk) throw new AppError("NOT_FOUND", `Chunk ${index} is not in this session (it may have been cleared by a reset)`);
  return chunk;
}
