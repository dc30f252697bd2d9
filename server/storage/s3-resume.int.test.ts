import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import path from "node:path";
import { ListMultipartUploadsCommand, ListPartsCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { waitFor } from "../../tests/helpers/factories";
import { chunked, noiseBytes } from "../../tests/helpers/noise";
import { swiftBucket, swiftSkipReason, type SwiftBucket, type TestS3 } from "../../tests/helpers/s3-swift";
import { PART_BYTES, type S3BlobStore } from "./s3-blob-store";

// A put whose digest is stated records its multipart upload in Postgres part by part; a process
// killed -9 in the middle leaves the record, and the next put of the same content, in another
// process, goes on from the last whole part instead of sending everything again.

const skip = swiftSkipReason();
const bucket = "gantry-resume";
const prefix = "resume/";
const LEASE_MS = 1500;
let s3: TestS3;
let raw: S3Client;
let swift: SwiftBucket | undefined;
let store: S3BlobStore;
const children: ChildProcess[] = [];
const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

function startPutter(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ["--import", "tsx", path.resolve("tests/helpers/s3-put-child.ts")], {
    env: { ...process.env, S3_ENDPOINT: s3.endpoint, S3_BUCKET: bucket, S3_PREFIX: prefix, S3_ACCESS_KEY_ID: s3.accessKeyId, S3_SECRET_ACCESS_KEY: s3.secretAccessKey, LEASE_MS: String(LEASE_MS), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  return { child, output: () => output };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) throw new Error(`The putter had already ended (${child.exitCode ?? child.signalCode})`);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

async function read(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

const unfinished = async () => (await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];

beforeAll(async () => {
  if (skip) return;
  swift = await swiftBucket(bucket, prefix);
  ({ s3, raw } = swift);
  store = swift.store({ db: testDb, leaseMs: LEASE_MS });
}, 300_000);
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  swift?.close();
});

describe.skipIf(!!skip)(`Resumable multipart uploads${skip ? ` (skipped: ${skip})` : ""}`, { timeout: 120_000 }, () => {
  it("a put killed -9 after two parts is finished by the next process, which sends only the parts that are missing", async () => {
    const db = testDb();
    const data = noiseBytes(4 * PART_BYTES + 12_345, 42);
    const digest = sha(data);
    const putter = startPutter({ DATABASE_URL: process.env.DATABASE_URL!, BYTES: String(data.length), SEED: "42", STALL_AT: String(2 * PART_BYTES + PART_BYTES / 2) });
    const record = await waitFor(
      async () => {
        const r = await db.blobUpload.findFirst({ where: { sha256: digest }, include: { parts: { orderBy: { number: "asc" } } } });
        return r && r.parts.length >= 2 ? r : null;
      },
      { timeoutMs: 60_000, what: `two recorded parts (putter said: ${putter.output()})` },
    );
    await kill(putter.child);
    const killedAt = Date.now();
    expect(record.partBytes).toBe(PART_BYTES);
    expect(record.parts.map((p) => p.number)).toEqual([1, 2]);
    expect(record.parts[0].sha256).toBe(sha(data.subarray(0, PART_BYTES)));
    // The dead process's upload is still there, with its two parts.
    expect((await unfinished()).map((u) => u.UploadId)).toContain(record.uploadId);

    // A put of other content meanwhile is not held up by it.
    const other = noiseBytes(1000, 3);
    expect((await store.put(chunked(other), { expectedSha256: sha(other) })).sha256).toBe(sha(other));

    // The resumed put: once the third part is sent, parts 1 and 2 are still those of the killed process.
    let seenParts: { n: number; etag: string; at: Date }[] = [];
    const resumed = await store.put(
      chunked(data, async (offset) => {
        if (offset !== 3 * PART_BYTES) return;
        // Swift's listings may lag a moment behind its writes.
        await waitFor(async () => {
          const listed = await raw.send(new ListPartsCommand({ Bucket: bucket, Key: record.key, UploadId: record.uploadId }));
          seenParts = (listed.Parts ?? []).map((p) => ({ n: p.PartNumber!, etag: p.ETag!, at: p.LastModified! }));
          return seenParts.length >= 3;
        }, { timeoutMs: 10_000, what: "the third part to be listed" }).catch(() => {});
      }),
      { expectedSha256: digest },
    );
    expect(resumed).toEqual({ sha256: digest, bytes: data.length });
    expect(seenParts.map((p) => p.n)).toEqual([1, 2, 3]);
    expect(seenParts.slice(0, 2).map((p) => p.etag)).toEqual(record.parts.map((p) => p.etag));
    // (Swift gives part times in whole seconds; the resumed put waited out the dead holder's lease first.)
    expect(seenParts[1].at.getTime()).toBeLessThanOrEqual(killedAt + 1000);
    expect(seenParts[2].at.getTime()).toBeGreaterThan(killedAt + 1000);

    // The blob is whole and right; the record and the upload are gone.
    const stored = await read(await store.get(digest));
    expect(stored.length).toBe(data.length);
    expect(sha(stored)).toBe(digest);
    expect(await db.blobUpload.count({ where: { sha256: digest } })).toBe(0);
    expect((await unfinished()).map((u) => u.UploadId)).not.toContain(record.uploadId);
  });

  it("a recorded part the source no longer matches is sent again, and a put of the same content while another holds it goes its own way", async () => {
    const db = testDb();
    const data = noiseBytes(2 * PART_BYTES + 10, 77);
    const digest = sha(data);
    const putter = startPutter({ DATABASE_URL: process.env.DATABASE_URL!, BYTES: String(data.length), SEED: "77", STALL_AT: String(PART_BYTES + 1024 * 1024), LEASE_MS: "4000" });
    const record = await waitFor(async () => {
      const r = await db.blobUpload.findFirst({ where: { sha256: digest }, include: { parts: true } });
      return r && r.parts.length >= 1 ? r : null;
    }, { timeoutMs: 60_000, what: "a recorded part" });
    // Held (its holder renews it): this put waits out the lease once, then goes its own way and still stores the blob.
    expect(await store.put(chunked(data), { expectedSha256: digest })).toEqual({ sha256: digest, bytes: data.length });
    expect(await db.blobUpload.count({ where: { id: record.id } })).toBe(1);
    await kill(putter.child);
    await store.delete(digest);
    // The record says part 1 had other bytes: the resumed put sends it again.
    await db.blobUploadPart.update({ where: { uploadId_number: { uploadId: record.id, number: 1 } }, data: { sha256: "0".repeat(64) } });
    await db.blobUpload.update({ where: { id: record.id }, data: { heldUntil: new Date(Date.now() - 1000) } });
    expect(await store.put(chunked(data), { expectedSha256: digest })).toEqual({ sha256: digest, bytes: data.length });
    expect(sha(await read(await store.get(digest)))).toBe(digest);
  });

  it("abandoned uploads — recorded or not — are listed once idle for the window and removed by the sweep's hand", async () => {
    const db = testDb();
    const earlier = new Set((await unfinished()).map((u) => u.UploadId));
    const stated = startPutter({ DATABASE_URL: process.env.DATABASE_URL!, BYTES: String(2 * PART_BYTES), SEED: "5", STALL_AT: String(PART_BYTES + 1024 * 1024) });
    const unstated = startPutter({ DATABASE_URL: process.env.DATABASE_URL!, BYTES: String(2 * PART_BYTES), SEED: "6", STALL_AT: String(PART_BYTES + 1024 * 1024), STATE: "unstated" });
    const digest = sha(noiseBytes(2 * PART_BYTES, 5));
    await waitFor(async () => (await db.blobUploadPart.count({ where: { upload: { sha256: digest } } })) >= 1, { timeoutMs: 60_000, what: `the stated put's first part (${stated.output()})` });
    await waitFor(async () => (await unfinished()).length >= 2, { timeoutMs: 60_000, what: `both uploads to start (${unstated.output()}; ${JSON.stringify(await unfinished())})` });
    await new Promise((r) => setTimeout(r, 4000)); // let the unstated put's first part land too
    await kill(stated.child);
    await kill(unstated.child);
    // Within the window nothing is abandoned.
    const leftovers = async (before: Date) => {
      const found = [];
      for await (const l of store.listLeftovers(before)) found.push(l);
      return found;
    };
    expect((await leftovers(new Date(Date.now() - 60_000))).filter((l) => l.what === "unfinished upload")).toEqual([]);
    await new Promise((r) => setTimeout(r, LEASE_MS + 500));
    const abandoned = (await leftovers(new Date(Date.now() + 1000))).filter((l) => l.what === "unfinished upload" && !earlier.has(l.upload!.uploadId));
    expect(abandoned, JSON.stringify(abandoned)).toHaveLength(2);
    expect(abandoned.find((l) => l.upload?.recordId)?.bytes).toBe(PART_BYTES);
    for (const l of abandoned) await store.removeLeftover(l);
    expect((await unfinished()).filter((u) => !earlier.has(u.UploadId))).toEqual([]);
    expect(await db.blobUpload.count({ where: { sha256: digest } })).toBe(0);
  });
});
