import crypto from "node:crypto";
import { Readable } from "node:stream";
import { ERRORS, type Locker } from "@tus/server";
import { z } from "zod";
import type { Db } from "../db";
import { Prisma } from "../generated/prisma/client";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import type { BlobSource, BlobStore } from "../storage/blob-store";
import { MissingPieceError, putPiece, readPiecesInOrder, removePieces, uploadPieceSchema } from "../storage/upload-pieces";
import { MAX_TEST_VECTOR_BYTES, type uploadStatusSchema } from "./models.schemas";
import { addVersionFromUpload, NotAModelError, TestVectorRefusedError, UploadTooLargeError } from "./registry.service";
import { parseTestVector } from "./test-vector";
import { refuseNulCharacters } from "../security/nul-characters";

// Resumable uploads for multi-gigabyte models. An upload is a row (ModelUpload: what it will
// become, and the pieces received so far); each PUT carries `Content-Range: bytes
// <start>-<end>/<total>`, and what it adds past the bytes already received is put into the blob
// store as one piece, named on the row, so a client that lost its connection asks how much
// arrived and sends the rest, to any web process on any machine. The last byte turns the
// upload into a version: its pieces are read back in order as the model's bytes. One piece is
// written at a time, under a lock every web process shares (in Postgres, freed when the process
// holding it dies). Pieces are removed once joined, or when the upload is cancelled or started
// over (upload-pieces.ts); those of uploads untouched for a day, which are forgotten, go with the
// blob sweep. A test vector given at the start is kept on the row and checked against the model
// at the end.

const UPLOAD_TTL_MS = 24 * 60 * 60 * 1000;

const piecesSchema = z.array(uploadPieceSchema({ start: z.number().int().nonnegative() }));
type Pieces = z.infer<typeof piecesSchema>;

export interface UploadDeps {
  db: Db;
  blobs: BlobStore;
  maxBytes: number;
  /** One writer per upload across processes; a locker that tries once (pg-upload-locker.ts). */
  locks: Locker;
  /** The same locks, for a cancel: it asks a piece being written to stop, and waits for it (pg-upload-locker.ts). */
  waitingLocks: Locker;
}

export type UploadStatus = z.infer<typeof uploadStatusSchema>;

export async function startUpload(
  deps: UploadDeps,
  {
    actor,
    modelId,
    total,
    sha256,
    filename,
    dims,
    testVector,
  }: { actor: OrgActor; modelId: string; total: number; sha256?: string; filename?: string; dims: Record<string, number>; testVector?: unknown },
): Promise<UploadStatus> {
  const model = await deps.db.model.findFirst({ where: { id: modelId, orgId: actor.orgId } });
  if (!model) throw new AppError("NOT_FOUND", "There is no such model in this organisation; it may have been deleted");
  if (!Number.isSafeInteger(total) || total < 1) throw new AppError("BAD_REQUEST", "Say how large the file is with an Upload-Length header (bytes, at least 1)");
  if (total > deps.maxBytes) throw new UploadTooLargeError(deps.maxBytes);
  // Its form is checked now; whether it fits the model, once the model has arrived.
  if (testVector !== undefined) {
    const parsed = parseTestVector(testVector);
    if (!parsed.vector) throw new TestVectorRefusedError("cannot be read", parsed.problems, "No upload was started");
  }
  await deps.db.modelUpload.deleteMany({ where: { updatedAt: { lt: new Date(Date.now() - UPLOAD_TTL_MS) } } });
  const uploadId = crypto.randomUUID();
  await deps.db.modelUpload.create({
    data: {
      id: uploadId, orgId: actor.orgId, modelId, userId: actor.userId, total: BigInt(total), sha256: sha256 ?? null, filename: filename ?? null,
      dims: dims as Prisma.InputJsonValue, testVector: testVector === undefined ? Prisma.DbNull : (testVector as Prisma.InputJsonValue),
    },
  });
  return { uploadId, received: 0, total };
}

type UploadRow = NonNullable<Awaited<ReturnType<Db["modelUpload"]["findFirst"]>>>;

const receivedOf = (pieces: Pieces) => (pieces.length ? pieces[pieces.length - 1].start + pieces[pieces.length - 1].bytes : 0);

async function loadUpload(deps: UploadDeps, actor: OrgActor, modelId: string, uploadId: string): Promise<{ row: UploadRow; total: number; pieces: Pieces; received: number }> {
  const missing = new AppError("NOT_FOUND", "There is no such upload for this model; it finished, expired after a day, or was never started — start a new one");
  if (!z.uuid().safeParse(uploadId).success) throw missing;
  const row = await deps.db.modelUpload.findFirst({ where: { id: uploadId, orgId: actor.orgId, modelId, updatedAt: { gte: new Date(Date.now() - UPLOAD_TTL_MS) } } });
  if (!row) throw missing;
  const pieces = piecesSchema.safeParse(row.pieces);
  if (!pieces.success) throw new AppError("INTERNAL", "The record of this upload's pieces is damaged; start a new upload");
  return { row, total: Number(row.total), pieces: pieces.data, received: receivedOf(pieces.data) };
}

export async function getUploadStatus(deps: UploadDeps, { actor, modelId, uploadId }: { actor: OrgActor; modelId: string; uploadId: string }): Promise<UploadStatus> {
  const { total, received } = await loadUpload(deps, actor, modelId, uploadId);
  return { uploadId, received, total };
}

/** Parses `bytes <start>-<end>/<total>`. */
export function parseContentRange(header: string | null): { start: number; end: number; total: number } {
  const match = /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16})$/.exec(header?.trim() ?? "");
  if (!match) throw new AppError("BAD_REQUEST", "Send each piece with a Content-Range header: `bytes <first>-<last>/<total>`, e.g. `bytes 0-8388607/1073741824`");
  const [start, end, total] = match.slice(1).map(Number);
  if (start > end || end >= total) throw new AppError("BAD_REQUEST", `The Content-Range ${header} is not a range inside the file`);
  return { start, end, total };
}

/**
 * Takes one piece. A piece may repeat bytes already received (a client unsure whether its last
 * piece arrived): only what follows them is kept. One that leaves a gap is refused with the
 * offset to send from. Returns the version once the last byte is in.
 */
export async function putUploadChunk(
  deps: UploadDeps,
  { actor, modelId, uploadId, contentRange, body, signal }: { actor: OrgActor; modelId: string; uploadId: string; contentRange: string | null; body: BlobSource | null; signal?: AbortSignal },
): Promise<{ status: UploadStatus; version?: { versionId: string; number: number; jobId: string } }> {
  const { total } = await loadUpload(deps, actor, modelId, uploadId);
  const range = parseContentRange(contentRange);
  if (!body) throw new AppError("BAD_REQUEST", "Send the piece's bytes as the request body");
  if (range.total !== total) throw new AppError("BAD_REQUEST", `This upload is ${total} bytes, but the piece says ${range.total}; send the same total every time`);
  // A cancel asks for the lock: the piece stops, removes what it wrote, and lets go.
  const cancelled = new AbortController();
  const release = await lockSession(deps.locks, uploadId, { signal, onRelease: () => cancelled.abort() });
  const work = signal ? AbortSignal.any([signal, cancelled.signal]) : cancelled.signal;
  // A body whose bytes stop coming must not keep the piece waiting once it is asked to stop.
  const stopBody = () => {
    if (body instanceof Readable) body.destroy(new Error("The piece was stopped"));
  };
  cancelled.signal.addEventListener("abort", stopBody, { once: true });
  try {
    // Read again under the lock: the piece before this one may have ended on another process.
    const { row, pieces, received } = await loadUpload(deps, actor, modelId, uploadId);
    if (range.start > received) throw new AppError("CONFLICT", `The upload has ${received} bytes so far; send the piece starting at byte ${received}`);
    const expected = range.end - range.start + 1;
    const already = received - range.start;
    let written = 0;
    async function* newBytes() {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        work.throwIfAborted();
        const from = written;
        written += chunk.length;
        if (written > expected) throw new AppError("BAD_REQUEST", `The piece is longer than its Content-Range (${expected} bytes)`);
        if (written <= already) continue;
        yield from >= already ? chunk : chunk.subarray(already - from);
      }
    }
    const isNew = range.end >= received;
    // What this piece adds, as one blob; a piece that stops short is removed, and the upload names nothing of it.
    const piece = isNew ? await putPiece(deps.blobs, `model-upload ${uploadId} ${received}`, newBytes(), { signal: work, maxBytes: expected }) : await drain(newBytes());
    if (written !== expected) {
      if (piece) await removePieces(deps.blobs, [piece]);
      throw new AppError("BAD_REQUEST", `The piece had ${written} bytes, not the ${expected} its Content-Range says; send it again`);
    }
    // A new piece holds at least one byte here: it ends at or after the first byte not yet received.
    const all = piece ? [...pieces, { start: received, ...piece }] : pieces;
    const now = receivedOf(all);
    await deps.db.modelUpload.update({ where: { id: row.id }, data: { pieces: all as Prisma.InputJsonValue } });
    if (now < total) return { status: { uploadId, received: now, total } };
    try {
      const version = await addVersionFromUpload(deps.db, {
        actor,
        modelId,
        body: readPiecesInOrder(deps.blobs, all),
        blobs: deps.blobs,
        maxBytes: deps.maxBytes,
        sha256: row.sha256 ?? undefined,
        filename: row.filename ?? undefined,
        dims: row.dims as Record<string, number>,
        testVector: row.testVector === null ? undefined : row.testVector,
        signal: work,
        // The record goes with the version's making: a process killed after it cannot make the version twice.
        alsoInTransaction: (tx) => tx.modelUpload.deleteMany({ where: { id: row.id } }),
      });
      await forget(deps, row.id, all);
      return { status: { uploadId, received: now, total }, version };
    } catch (error) {
      // A checksum mismatch means the bytes are wrong somewhere: start over rather than resume.
      // A vector that does not fit the model cannot be mended in this upload either.
      // A piece the store lost (or a cancel removed meanwhile) cannot be sent again in this upload either,
      // nor a file that is not a model.
      const isLost = error instanceof TestVectorRefusedError || error instanceof NotAModelError || error instanceof MissingPieceError || (error instanceof AppError && /damaged/.test(error.message));
      if (isLost) await forget(deps, row.id, all);
      throw error;
    }
  } catch (error) {
    // Asked to let go: by a cancel, most often, or because the lock's database session was lost (the upload is then intact).
    if (!cancelled.signal.aborted) throw error;
    throw new AppError("CONFLICT", "This piece was stopped before it was all written: the upload was cancelled, or the portal lost its hold on it. Ask how much arrived and send the rest; if the upload is gone, start a new one");
  } finally {
    cancelled.signal.removeEventListener("abort", stopBody);
    await release();
  }
}

/** Reads a source to its end, keeping nothing (a piece whose bytes had all arrived before). */
async function drain(source: AsyncIterable<Uint8Array>): Promise<null> {
  for await (const chunk of source) void chunk;
  return null;
}

/** Parses the Test-Vector-Length header of a one-shot upload: null when absent. */
export function parseTestVectorLength(header: string | null): number | null {
  if (header === null) return null;
  const length = /^\d{1,9}$/.test(header.trim()) ? Number(header.trim()) : Number.NaN;
  if (!(length >= 1 && length <= MAX_TEST_VECTOR_BYTES)) {
    throw new AppError("BAD_REQUEST", `Test-Vector-Length must be the byte length of the JSON test vector that starts the body, from 1 to ${MAX_TEST_VECTOR_BYTES}; it is ${JSON.stringify(header)}`);
  }
  return length;
}

/**
 * Splits a one-shot upload's body into the JSON test vector it starts with (`length` bytes, as
 * Test-Vector-Length says) and the model's bytes after it, which stream on unread.
 */
export async function splitTestVector(body: AsyncIterable<Uint8Array>, length: number): Promise<{ testVector: unknown; model: AsyncIterable<Uint8Array> }> {
  const iterator = body[Symbol.asyncIterator]();
  const parts: Uint8Array[] = [];
  let have = 0;
  let leftover: Uint8Array | null = null;
  while (have < length) {
    const next = await iterator.next();
    if (next.done) throw new AppError("BAD_REQUEST", `The body ended after ${have} bytes, inside the ${length}-byte test vector Test-Vector-Length announced; send the vector's JSON, then the model`);
    const chunk = next.value;
    const need = length - have;
    parts.push(chunk.length > need ? chunk.subarray(0, need) : chunk);
    if (chunk.length > need) leftover = chunk.subarray(need);
    have += Math.min(chunk.length, need);
  }
  let testVector: unknown;
  try {
    testVector = JSON.parse(Buffer.concat(parts).toString("utf8"));
  } catch {
    throw new AppError("BAD_REQUEST", `The first ${length} bytes of the body (Test-Vector-Length) are not JSON; send the test vector's JSON first, then the model's bytes`);
  }
  refuseNulCharacters(testVector, "The test vector");
  async function* model() {
    if (leftover?.length) yield leftover;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  return { testVector, model: model() };
}

/**
 * Abandons an upload. A piece being written meanwhile (on any process) is asked to stop and
 * waited for, so it cannot name a piece on a row already gone or read pieces already removed.
 */
export async function cancelUpload(deps: UploadDeps, { actor, modelId, uploadId }: { actor: OrgActor; modelId: string; uploadId: string }): Promise<void> {
  await loadUpload(deps, actor, modelId, uploadId);
  const release = await lockSession(deps.waitingLocks, uploadId, { whenHeld: "A piece of this upload is still being written and did not stop within 30 s; cancel again in a moment" });
  try {
    // Read again under the lock: the piece that let go may have finished the upload, or added a piece.
    const { row, pieces } = await loadUpload(deps, actor, modelId, uploadId);
    await forget(deps, row.id, pieces);
  } finally {
    await release();
  }
}

/** Deletes the upload's row, then its pieces (nothing names them once the row is gone). */
async function forget(deps: UploadDeps, id: string, pieces: Pieces): Promise<void> {
  await deps.db.modelUpload.deleteMany({ where: { id } });
  await removePieces(deps.blobs, pieces);
}

/**
 * One writer per session, whichever process the piece reached: with the try-once locks a piece is
 * refused at once while another is written; with the waiting ones the holder is asked to let go
 * (`onRelease` runs in the holder) and waited for.
 */
async function lockSession(
  locks: Locker,
  uploadId: string,
  { signal, onRelease = () => {}, whenHeld = "Another piece of this upload is being written; wait for it, then ask how much arrived" }: { signal?: AbortSignal; onRelease?: () => void; whenHeld?: string } = {},
): Promise<() => Promise<void>> {
  const lock = locks.newLock(`model-upload:${uploadId}`);
  try {
    await lock.lock(signal ?? new AbortController().signal, onRelease);
  } catch (error) {
    if (error !== ERRORS.ERR_LOCK_TIMEOUT) throw error;
    throw new AppError("CONFLICT", whenHeld);
  }
  return () => lock.unlock();
}
