import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { ERRORS, type Locker } from "@tus/server";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import type { BlobSource, BlobStore } from "../storage/blob-store";
import { sha256Schema } from "../storage/blob-store";
import { dimsSchema, MAX_TEST_VECTOR_BYTES, type uploadStatusSchema } from "./models.schemas";
import { addVersionFromUpload, TestVectorRefusedError, UploadTooLargeError } from "./registry.service";
import { parseTestVector } from "./test-vector";

// Resumable uploads for multi-gigabyte models: a session is a directory under
// GANTRY_HOME/uploads/models/<id> holding what arrived so far; each PUT carries
// `Content-Range: bytes <start>-<end>/<total>` and is written at its offset, so a client that
// lost its connection asks how much arrived and sends the rest. The last byte turns the
// session into a version. Sessions untouched for a day are swept. A test vector given at the
// start is kept beside the bytes (vector.json) and checked against the model at the end.
// Sessions are folders and one piece is written at a time under a lock every web process
// shares (in Postgres, freed when the process holding it dies), so consecutive pieces may go to
// different processes.

const SESSION_TTL_MS = 24 * 60 * 60 * 1000;

const sessionSchema = z.object({
  orgId: z.uuid(),
  modelId: z.uuid(),
  userId: z.uuid(),
  total: z.number().int().min(1),
  sha256: sha256Schema.optional(),
  filename: z.string().max(500).optional(),
  dims: dimsSchema,
  hasTestVector: z.boolean().default(false),
  createdAt: z.string(),
});
type Session = z.infer<typeof sessionSchema>;

export interface UploadDeps {
  db: Db;
  blobs: BlobStore;
  /** GANTRY_HOME/uploads/models */
  root: string;
  maxBytes: number;
  /** One writer per session across processes; a locker that tries once (pg-upload-locker.ts). */
  locks: Locker;
}

export type UploadStatus = z.infer<typeof uploadStatusSchema>;

const sessionDir = (root: string, uploadId: string) => path.join(root, z.uuid().parse(uploadId));

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
  await sweepExpired(deps.root);
  const uploadId = crypto.randomUUID();
  const dir = sessionDir(deps.root, uploadId);
  await fsp.mkdir(dir, { recursive: true });
  const session: Session = { orgId: actor.orgId, modelId, userId: actor.userId, total, sha256, filename, dims, hasTestVector: testVector !== undefined, createdAt: new Date().toISOString() };
  await fsp.writeFile(path.join(dir, "data"), "");
  if (testVector !== undefined) await fsp.writeFile(path.join(dir, "vector.json"), JSON.stringify(testVector));
  await fsp.writeFile(path.join(dir, "session.json"), JSON.stringify(session));
  return { uploadId, received: 0, total };
}

async function loadSession(deps: UploadDeps, actor: OrgActor, modelId: string, uploadId: string): Promise<{ dir: string; session: Session; received: number }> {
  const missing = new AppError("NOT_FOUND", "There is no such upload for this model; it finished, expired after a day, or was never started — start a new one");
  if (!z.uuid().safeParse(uploadId).success) throw missing;
  const dir = sessionDir(deps.root, uploadId);
  let session: Session;
  try {
    session = sessionSchema.parse(JSON.parse(await fsp.readFile(path.join(dir, "session.json"), "utf8")));
  } catch {
    throw missing;
  }
  if (session.orgId !== actor.orgId || session.modelId !== modelId) throw missing;
  const { size } = await fsp.stat(path.join(dir, "data"));
  return { dir, session, received: size };
}

export async function getUploadStatus(deps: UploadDeps, { actor, modelId, uploadId }: { actor: OrgActor; modelId: string; uploadId: string }): Promise<UploadStatus> {
  const { session, received } = await loadSession(deps, actor, modelId, uploadId);
  return { uploadId, received, total: session.total };
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
 * Writes one piece at its offset. A piece may repeat bytes already received (a client unsure
 * whether its last piece arrived); one that leaves a gap is refused with the offset to send from.
 * Returns the version once the last byte is in.
 */
export async function putUploadChunk(
  deps: UploadDeps,
  { actor, modelId, uploadId, contentRange, body, signal }: { actor: OrgActor; modelId: string; uploadId: string; contentRange: string | null; body: BlobSource | null; signal?: AbortSignal },
): Promise<{ status: UploadStatus; version?: { versionId: string; number: number; jobId: string } }> {
  const { dir, session } = await loadSession(deps, actor, modelId, uploadId);
  const range = parseContentRange(contentRange);
  if (!body) throw new AppError("BAD_REQUEST", "Send the piece's bytes as the request body");
  if (range.total !== session.total) throw new AppError("BAD_REQUEST", `This upload is ${session.total} bytes, but the piece says ${range.total}; send the same total every time`);
  const release = await lockSession(deps.locks, uploadId, signal);
  try {
    const dataPath = path.join(dir, "data");
    const received = (await fsp.stat(dataPath)).size;
    if (range.start > received) throw new AppError("CONFLICT", `The upload has ${received} bytes so far; send the piece starting at byte ${received}`);
    const expected = range.end - range.start + 1;
    let written = 0;
    async function* counted() {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        written += chunk.length;
        if (written > expected) throw new AppError("BAD_REQUEST", `The piece is longer than its Content-Range (${expected} bytes)`);
        yield chunk;
      }
    }
    try {
      await pipeline(counted(), fs.createWriteStream(dataPath, { flags: "r+", start: range.start }), ...(signal ? [{ signal }] : []));
      if (written !== expected) throw new AppError("BAD_REQUEST", `The piece had ${written} bytes, not the ${expected} its Content-Range says; send it again`);
    } catch (error) {
      // Keep only what is known good: the bytes before this piece.
      await fsp.truncate(dataPath, range.start).catch(() => {});
      throw error;
    }
    const now = (await fsp.stat(dataPath)).size;
    await fsp.utimes(path.join(dir, "session.json"), new Date(), new Date());
    if (now < session.total) return { status: { uploadId, received: now, total: session.total } };
    try {
      const version = await addVersionFromUpload(deps.db, {
        actor,
        modelId,
        body: fs.createReadStream(dataPath),
        blobs: deps.blobs,
        maxBytes: deps.maxBytes,
        sha256: session.sha256,
        filename: session.filename,
        dims: session.dims,
        testVector: session.hasTestVector ? JSON.parse(await fsp.readFile(path.join(dir, "vector.json"), "utf8")) : undefined,
        signal,
      });
      await fsp.rm(dir, { recursive: true, force: true });
      return { status: { uploadId, received: now, total: session.total }, version };
    } catch (error) {
      // A checksum mismatch means the bytes are wrong somewhere: start over rather than resume.
      // A vector that does not fit the model cannot be mended in this session either.
      if (error instanceof TestVectorRefusedError || (error instanceof AppError && /damaged/.test(error.message))) await fsp.rm(dir, { recursive: true, force: true });
      throw error;
    }
  } finally {
    await release();
  }
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
  async function* model() {
    if (leftover?.length) yield leftover;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  return { testVector, model: model() };
}

export async function cancelUpload(deps: UploadDeps, { actor, modelId, uploadId }: { actor: OrgActor; modelId: string; uploadId: string }): Promise<void> {
  const { dir } = await loadSession(deps, actor, modelId, uploadId);
  await fsp.rm(dir, { recursive: true, force: true });
}

/** One writer per session, whichever process the piece reached; refused at once while another piece is written. */
async function lockSession(locks: Locker, uploadId: string, signal?: AbortSignal): Promise<() => Promise<void>> {
  const lock = locks.newLock(`model-upload:${uploadId}`);
  try {
    await lock.lock(signal ?? new AbortController().signal, () => {});
  } catch (error) {
    if (error !== ERRORS.ERR_LOCK_TIMEOUT) throw error;
    throw new AppError("CONFLICT", "Another piece of this upload is being written; wait for it, then ask how much arrived");
  }
  return () => lock.unlock();
}

async function sweepExpired(root: string): Promise<void> {
  const entries = await fsp.readdir(root, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const stat = (await fsp.stat(path.join(root, e.name, "session.json")).catch(() => null)) ?? (await fsp.stat(path.join(root, e.name)).catch(() => null));
    if (stat && Date.now() - stat.mtimeMs > SESSION_TTL_MS) await fsp.rm(path.join(root, e.name), { recursive: true, force: true });
  }
}

