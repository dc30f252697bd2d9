import crypto from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { noiseBytes } from "../../tests/helpers/noise";
import { swiftBucket, swiftSkipReason, type SwiftBucket } from "../../tests/helpers/s3-swift";
import type { OrgActor } from "../auth/roles";
import { modelUploadLocks } from "../db/upload-locks";
import { namedBlobs } from "../storage/blob-refs";
import type { S3BlobStore } from "../storage/s3-blob-store";
import { createModel } from "./registry.service";
import { cancelUpload, getUploadStatus, putUploadChunk, startUpload, type UploadDeps } from "./uploads.service";

// A resumable model upload whose pieces reach web processes on different machines: nothing of it
// is kept in a folder, only its row and its pieces in the bucket (a real S3 server, Swift's gateway).

const skip = swiftSkipReason();
const db = testDb();
const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
let swift: SwiftBucket | undefined;
let actor: OrgActor;
let modelId: string;
/** Two web processes: each its own store client, no folder in common. */
let web: [UploadDeps, UploadDeps];

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "operator")).actor;
  modelId = (await createModel(db, { actor, input: { name: `bucket upload ${crypto.randomUUID().slice(0, 8)}`, description: "" } })).id;
  if (skip) return;
  swift = await swiftBucket("gantry-model-uploads", "models/");
  const deps = (store: S3BlobStore): UploadDeps => ({ db, blobs: store, maxBytes: 1024 ** 3, ...modelUploadLocks() });
  web = [deps(swift.store({ db: () => db })), deps(swift.store({ db: () => db }))];
}, 180_000);
afterAll(async () => {
  swift?.close();
  await db.$disconnect();
});

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function* bytesOf(content: Buffer, signal?: AbortController, stopAt?: number) {
  for (let at = 0; at < content.length; at += 16_384) {
    if (stopAt !== undefined && at >= stopAt) {
      signal?.abort(new Error("the client went away"));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    yield new Uint8Array(content.subarray(at, Math.min(content.length, at + 16_384)));
  }
}

describe.skipIf(skip)("resumable model uploads through a bucket", () => {
  it("takes pieces on two web processes, keeps a cut-off piece out, makes the version from the pieces in the bucket and removes them", async () => {
    const content = noiseBytes(900_000, 7);
    const { uploadId } = await startUpload(web[0], { actor, modelId, total: content.length, sha256: sha(content), filename: "policy.onnx", dims: {} });
    const put = (on: UploadDeps, start: number, end: number, options: { abort?: AbortController; stopAt?: number } = {}) =>
      putUploadChunk(on, { actor, modelId, uploadId, contentRange: `bytes ${start}-${end}/${content.length}`, body: bytesOf(content.subarray(start, end + 1), options.abort, options.stopAt), signal: options.abort?.signal });

    expect((await put(web[0], 0, 299_999)).status.received).toBe(300_000);
    // A piece cut off halfway: nothing of it counts.
    const abort = new AbortController();
    await expect(put(web[1], 300_000, 599_999, { abort, stopAt: 100_000 })).rejects.toThrow();
    expect((await getUploadStatus(web[1], { actor, modelId, uploadId })).received).toBe(300_000);
    // Sent again on the other process, overlapping what arrived: only the new bytes are kept.
    expect((await put(web[1], 200_000, 599_999)).status.received).toBe(600_000);
    const row = await db.modelUpload.findUniqueOrThrow({ where: { id: uploadId } });
    const pieces = row.pieces as Array<{ start: number; bytes: number; blob: string; header: number }>;
    expect(pieces.map((p) => [p.start, p.bytes])).toEqual([[0, 300_000], [300_000, 300_000]]);
    // Each piece is stored behind a header naming its upload and place, with random bits: a blob no other writer makes.
    const stored = await readAll(await web[0].blobs.get(pieces[1].blob));
    expect(stored.subarray(0, pieces[1].header).toString()).toMatch(new RegExp(`^gantry upload piece: model-upload ${uploadId} 300000 [0-9a-f]{32}\n$`));
    expect(stored.subarray(pieces[1].header).equals(content.subarray(300_000, 600_000))).toBe(true);
    for (const p of pieces) expect(await web[0].blobs.stat(p.blob)).toEqual({ bytes: p.header + p.bytes });
    expect(await namedBlobs(db, pieces.map((p) => p.blob))).toEqual(new Set(pieces.map((p) => p.blob)));

    const last = await put(web[0], 600_000, content.length - 1);
    expect(last.version).toBeDefined();
    expect(await db.modelVersion.findUniqueOrThrow({ where: { id: last.version!.versionId } })).toMatchObject({ sha256: sha(content), source: { kind: "upload", filename: "policy.onnx" } });
    expect(await web[1].blobs.has(sha(content))).toBe(true);
    // Done: the row is gone, and so are its pieces from the bucket.
    expect(await db.modelUpload.count({ where: { id: uploadId } })).toBe(0);
    expect(await namedBlobs(db, pieces.map((p) => p.blob))).toEqual(new Set());
    for (const p of pieces) expect(await web[1].blobs.has(p.blob)).toBe(false);
    await expect(getUploadStatus(web[1], { actor, modelId, uploadId })).rejects.toThrow(/no such upload/);
  });

  it("stops a piece being written on one web process when the upload is cancelled on another, and leaves nothing of it in the bucket", async () => {
    const since = new Date(Date.now() - 1000);
    const content = noiseBytes(400_000, 9);
    const { uploadId } = await startUpload(web[0], { actor, modelId, total: content.length, dims: {} });
    const where = { actor, modelId, uploadId };
    await putUploadChunk(web[0], { ...where, contentRange: `bytes 0-99999/${content.length}`, body: bytesOf(content.subarray(0, 100_000)) });
    const [first] = (await db.modelUpload.findUniqueOrThrow({ where: { id: uploadId } })).pieces as Array<{ blob: string }>;
    // A request body whose first bytes come and the rest never do, as the route hands it on.
    let reads = 0;
    const stalled = new Readable({
      read() {
        if (++reads === 1) this.push(content.subarray(100_000, 150_000));
      },
    });
    const writing = putUploadChunk(web[0], { ...where, contentRange: `bytes 100000-399999/${content.length}`, body: stalled });
    writing.catch(() => {});
    await waitFor(async () => reads >= 2, { what: "the piece's first bytes read" });
    await cancelUpload(web[1], where);
    await expect(writing).rejects.toThrow(/^This piece was stopped before it was all written: the upload was cancelled/);
    expect(await db.modelUpload.count({ where: { id: uploadId } })).toBe(0);
    expect(await web[1].blobs.has(first.blob)).toBe(false);
    const leftovers: string[] = [];
    for await (const leftover of web[1].blobs.listLeftovers(new Date(Date.now() + 60_000))) if (leftover.modifiedAt >= since) leftovers.push(leftover.name);
    expect(leftovers).toEqual([]);
  });

  it("makes the version once when the process dies after making it: the last piece sent again finds the upload finished", async () => {
    const content = noiseBytes(300_000, 11);
    const { uploadId } = await startUpload(web[0], { actor, modelId, total: content.length, sha256: sha(content), filename: "once.onnx", dims: {} });
    const put = (on: UploadDeps, start: number, end: number) => putUploadChunk(on, { actor, modelId, uploadId, contentRange: `bytes ${start}-${end}/${content.length}`, body: bytesOf(content.subarray(start, end + 1)) });
    await put(web[0], 0, 149_999);
    // This process "dies" once the version is made: nothing after that transaction runs.
    const dying: UploadDeps = {
      ...web[0],
      db: new Proxy(db, {
        get: (target, prop, receiver) =>
          prop === "modelUpload" ? new Proxy(target.modelUpload, { get: (uploads, key, r) => (key === "deleteMany" ? () => Promise.reject(new Error("killed")) : Reflect.get(uploads, key, r)) }) : Reflect.get(target, prop, receiver),
      }),
    };
    await expect(put(dying, 150_000, content.length - 1)).rejects.toThrow("killed");
    const versionsOf = () => db.modelVersion.count({ where: { modelId, sha256: sha(content) } });
    expect(await versionsOf()).toBe(1);
    // The client, never answered, sends the last piece again on the other process.
    await expect(put(web[1], 150_000, content.length - 1)).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringMatching(/it finished/) });
    expect(await versionsOf()).toBe(1);
  });
});
