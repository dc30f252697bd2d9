import crypto from "node:crypto";
import { Readable } from "node:stream";
import { HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { swiftBucket, swiftSkipReason, type SwiftBucket, type TestS3 } from "../../tests/helpers/s3-swift";
import { parseEnv } from "../env";
import { createS3BlobStore, PART_BYTES, type S3BlobStore } from "./s3-blob-store";
import { s3StoreFromSettings } from "./blobs";

// The S3 blob store against a real S3 server (Swift's gateway, which differs from AWS in ways
// R2 and Garage also do): the same contract as the folder store — content-addressed, whole or
// nothing, ranges — plus multipart uploads of fixed-size parts and presigned downloads.

const skip = swiftSkipReason();
let s3: TestS3;
let store: S3BlobStore;
let raw: S3Client;
let swift: SwiftBucket | undefined;
const bucket = "gantry-blobs";
const prefix = "instance-a/";

const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
async function read(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}
/** A source that yields `bytes` of seeded noise in 1 MiB chunks. */
function noise(bytes: number, seed = 1): { source: () => Readable; data: Buffer } {
  const words = Buffer.alloc(Math.ceil(bytes / 4) * 4);
  let x = seed;
  for (let i = 0; i < words.length; i += 4) {
    x = (x * 1103515245 + 12345) >>> 0;
    words.writeUInt32LE(x, i);
  }
  const data = words.subarray(0, bytes);
  return { data, source: () => Readable.from((function* () { for (let i = 0; i < bytes; i += 1024 * 1024) yield data.subarray(i, Math.min(bytes, i + 1024 * 1024)); })()) };
}
const leftovers = async () => {
  const objects = await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}tmp/` }));
  const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return { objects: objects.KeyCount ?? 0, uploads: uploads.Uploads?.length ?? 0 };
};

async function listed(sha256: string) {
  for await (const b of store.list()) if (b.sha256 === sha256) return b;
  return null;
}

beforeAll(async () => {
  if (skip) return;
  swift = await swiftBucket(bucket, prefix);
  ({ s3, raw } = swift);
  store = swift.store();
}, 180_000);
afterAll(async () => {
  swift?.close();
  await s3?.stop();
});

describe.skipIf(!!skip)(`S3 blob store${skip ? ` (skipped: ${skip})` : ""}`, { timeout: 60_000 }, () => {
  it("stores a blob larger than a part in fixed-size parts under its sha256, whole, and reads ranges of it", async () => {
    const { data, source } = noise(2 * PART_BYTES + 12345);
    const stored = await store.put(source());
    expect(stored).toEqual({ sha256: sha(data), bytes: data.length });
    expect(await store.stat(stored.sha256)).toEqual({ bytes: data.length });
    expect(await store.has(stored.sha256)).toBe(true);
    expect((await read(await store.get(stored.sha256))).equals(data)).toBe(true);
    expect((await read(await store.get(stored.sha256, { start: PART_BYTES - 10, end: PART_BYTES + 9 }))).equals(data.subarray(PART_BYTES - 10, PART_BYTES + 10))).toBe(true);
    expect((await read(await store.get(stored.sha256, { start: data.length - 5, end: data.length + 100 }))).equals(data.subarray(data.length - 5))).toBe(true);
    expect((await read(await store.get(stored.sha256, { start: data.length - 3 }))).equals(data.subarray(data.length - 3))).toBe(true);
    // Each read is one GET; what it cannot give is said as the folder store says it.
    await expect(store.get(stored.sha256, { start: data.length })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringContaining("past the end") });
    await expect(store.get(stored.sha256, { start: 9, end: 3 })).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(store.get("0".repeat(64), { start: 5 })).rejects.toMatchObject({ code: "NOT_FOUND" });
    const empty = await store.put(Readable.from([]));
    expect((await read(await store.get(empty.sha256))).length).toBe(0);
    expect((await read(await store.get(empty.sha256, { start: 0 }))).length).toBe(0);
    // Nothing temporary is left: the parts became the blob's own object.
    expect(await leftovers()).toEqual({ objects: 0, uploads: 0 });
    // The same content again is stored once and still reported, its parts dropped.
    expect(await store.put(source())).toEqual(stored);
    expect(await leftovers()).toEqual({ objects: 0, uploads: 0 });
  });

  it("stores and refreshes a blob past one CopyObject's limit by copying it part by part", async () => {
    // The limits scaled down (S3's are 5 GiB a CopyObject; parts of 1 GiB): a 21 MiB blob goes
    // past a 10 MiB limit and is copied in parts of 5 MiB, S3's smallest.
    const mib = 1024 * 1024;
    const big = swift!.store({ maxCopyBytes: 10 * mib, copyPartBytes: 5 * mib, refreshAfterMs: 0 });
    const { data, source } = noise(21 * mib + 777, 11);
    const stored = await big.put(source());
    expect(stored).toEqual({ sha256: sha(data), bytes: data.length });
    expect((await read(await big.get(stored.sha256))).equals(data)).toBe(true);
    expect((await read(await big.get(stored.sha256, { start: 5 * mib - 3, end: 5 * mib + 2 }))).equals(data.subarray(5 * mib - 3, 5 * mib + 3))).toBe(true);
    expect(await leftovers()).toEqual({ objects: 0, uploads: 0 });
    // A multipart object's ETag ends with its part count: the 5 copied parts, not the upload's 3 (nor none, for one copy).
    const etag = async () => (await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}sha256/${stored.sha256.slice(0, 2)}/${stored.sha256.slice(2, 4)}/${stored.sha256}` }))).ETag;
    expect(await etag()).toMatch(/-5"?$/);
    // Found again long after (refreshAfterMs 0): copied onto itself part by part, new for the sweep, still whole.
    const before = (await listed(stored.sha256))!.modifiedAt;
    await new Promise((r) => setTimeout(r, 1100));
    expect(await big.keep(stored.sha256)).toBe(true);
    expect((await listed(stored.sha256))!.modifiedAt.getTime()).toBeGreaterThan(before.getTime());
    expect((await read(await big.get(stored.sha256))).equals(data)).toBe(true);
    expect(await leftovers()).toEqual({ objects: 0, uploads: 0 });
    await big.delete(stored.sha256);
  });

  it("stores a small blob and an empty one in one request each", async () => {
    const small = Buffer.from("a small blob");
    expect(await store.put(Readable.from([small]))).toEqual({ sha256: sha(small), bytes: small.length });
    expect((await read(await store.get(sha(small)))).toString()).toBe("a small blob");
    const empty = await store.put(Readable.from([]));
    expect(empty).toEqual({ sha256: sha(Buffer.alloc(0)), bytes: 0 });
    expect((await read(await store.get(empty.sha256))).length).toBe(0);
  });

  it("refuses content whose sha256 does not match, or over maxBytes, and a stopped upload, leaving nothing behind", async () => {
    const { data, source } = noise(PART_BYTES + 100, 7);
    await expect(store.put(source(), { expectedSha256: "0".repeat(64) })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/damaged on the way/) });
    await expect(store.put(source(), { maxBytes: PART_BYTES })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/larger than the 8 MiB allowed/) });
    const controller = new AbortController();
    const reason = new Error("stopped by the test");
    const slow = Readable.from((async function* () {
      yield data.subarray(0, PART_BYTES);
      yield data.subarray(PART_BYTES, PART_BYTES + 10);
      controller.abort(reason);
      yield data.subarray(PART_BYTES + 10);
    })());
    await expect(store.put(slow, { signal: controller.signal })).rejects.toBe(reason);
    expect(await store.has(sha(data))).toBe(false);
    expect(await leftovers()).toEqual({ objects: 0, uploads: 0 });
  });

  it("answers absent blobs, bad digests and deletes as the folder store does", async () => {
    const absent = "f".repeat(64);
    expect(await store.stat(absent)).toBeNull();
    await expect(store.get(absent)).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(store.get("../../etc/passwd")).rejects.toMatchObject({ code: "BAD_REQUEST" });
    const blob = await store.put(Readable.from([Buffer.from("to be deleted")]));
    await store.delete(blob.sha256);
    await store.delete(blob.sha256);
    expect(await store.has(blob.sha256)).toBe(false);
  });

  it("gives presigned URLs that download the blob without credentials, and that the server checks", async () => {
    const body = Buffer.from("fetched straight from the bucket");
    const blob = await store.put(Readable.from([body]));
    const url = await store.presignedUrl(blob.sha256, { expiresInS: 60, fileName: 'model "v1".onnx' });
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
    const tampered = new URL(url);
    tampered.searchParams.set("X-Amz-Signature", "0".repeat(64));
    expect((await fetch(tampered)).status).toBe(403);
  });

  it("is checked at start: a missing bucket or a wrong key is said plainly", async () => {
    await expect(store.check()).resolves.toBeUndefined();
    const settings = { endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
    await expect(createS3BlobStore({ ...settings, bucket: "no-such-bucket" }).check()).rejects.toThrow(/the bucket no-such-bucket does not exist there/);
    await expect(createS3BlobStore({ ...settings, bucket, secretAccessKey: "wrong" }).check()).rejects.toThrow(/access key is refused/);
  });

  it("is chosen by BLOB_STORE=s3, whose settings must come together", () => {
    expect(() => parseEnv({ ...process.env, BLOB_STORE: "s3", S3_ENDPOINT: undefined })).toThrow(/s3 needs S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY/);
    const e = parseEnv({ ...process.env, BLOB_STORE: "s3", S3_ENDPOINT: s3.endpoint, S3_BUCKET: bucket, S3_ACCESS_KEY_ID: s3.accessKeyId, S3_SECRET_ACCESS_KEY: s3.secretAccessKey });
    expect(s3StoreFromSettings(e)).not.toBeNull();
    expect(s3StoreFromSettings(parseEnv({ ...process.env, BLOB_STORE: "local" }))).toBeNull();
  });
});
