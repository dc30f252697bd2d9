import { execFile } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { noiseBytes } from "../../tests/helpers/noise";
import { swiftBucket, swiftSkipReason, type TestS3 } from "../../tests/helpers/s3-swift";
import type { BlobStore } from "./blob-store";
import { copyBlobs } from "./blob-copy.service";
import { createLocalBlobStore } from "./local-blob-store";
import { PART_BYTES, type S3BlobStore } from "./s3-blob-store";

// `npm run blobs:copy -- --to s3|local` between a folder and a real bucket (Swift): every blob
// arrives whole, a second run skips what is there, an interrupted run goes on, and a copy the
// target holds wrongly is replaced.

const run = promisify(execFile);
const skip = swiftSkipReason();
const bucket = "gantry-copy";
const prefix = "copied/";
let s3: TestS3;
let bucketStore: S3BlobStore;
const dirs: string[] = [];
const tempDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-copy-"));
  dirs.push(d);
  return d;
};
const blobPathIn = (root: string, digest: string) => path.join(root, "sha256", digest.slice(0, 2), digest.slice(2, 4), digest);

async function digestOf(store: BlobStore, digest: string): Promise<string> {
  const hash = crypto.createHash("sha256");
  for await (const c of await store.get(digest)) hash.update(c as Buffer);
  return hash.digest("hex");
}

function copyCommand(to: "s3" | "local", blobDir: string) {
  return run(process.execPath, ["--import", "tsx", path.resolve("scripts/blobs-copy.ts"), "--to", to], {
    env: { ...process.env, BLOB_DIR: blobDir, S3_ENDPOINT: s3.endpoint, S3_BUCKET: bucket, S3_PREFIX: prefix, S3_ACCESS_KEY_ID: s3.accessKeyId, S3_SECRET_ACCESS_KEY: s3.secretAccessKey, S3_REGION: s3.region },
    timeout: 120_000,
  });
}

beforeAll(async () => {
  if (skip) return;
  const swift = await swiftBucket(bucket, prefix);
  swift.close();
  s3 = swift.s3;
  bucketStore = swift.store({ db: testDb });
}, 300_000);
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!!skip)(`Copying blobs between the folder and a bucket${skip ? ` (skipped: ${skip})` : ""}`, { timeout: 180_000 }, () => {
  it("copies every blob to the bucket with a line each, skips them the second time, and copies them back into a folder, replacing a damaged copy", async () => {
    const source = tempDir();
    const folder = createLocalBlobStore({ root: source });
    const contents = [noiseBytes(PART_BYTES + 4321, 9), ...[1, 2, 3, 4].map((i) => Buffer.from(`blob ${i} ${crypto.randomUUID()}`)), Buffer.alloc(0)];
    const digests: string[] = [];
    for (const c of contents) digests.push((await folder.put([c] as unknown as AsyncIterable<Uint8Array>)).sha256);
    // One is in the bucket already.
    await bucketStore.put([contents[1]] as unknown as AsyncIterable<Uint8Array>);

    const first = await copyCommand("s3", source);
    const lines = first.stdout.trim().split("\n");
    expect(lines.filter((l) => /^\[\d+\/6\] [0-9a-f]{64} .* copied — /.test(l))).toHaveLength(5);
    expect(lines.filter((l) => l.includes(digests[1]) && l.includes("already there"))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^6 blob\(s\): 5 copied and 0 replaced \(8 MiB\) to s3 bucket gantry-copy \(copied\/\), 1 already there$/);
    for (const d of digests) expect(await digestOf(bucketStore, d)).toBe(d);

    const again = await copyCommand("s3", source);
    expect(again.stdout.trim().split("\n").at(-1)).toMatch(/^6 blob\(s\): 0 copied and 0 replaced \(0 bytes\) .* 6 already there$/);

    // Back into a new folder that holds a truncated copy of the large one.
    const back = tempDir();
    fs.mkdirSync(path.dirname(blobPathIn(back, digests[0])), { recursive: true });
    fs.writeFileSync(blobPathIn(back, digests[0]), contents[0].subarray(0, 1000));
    const restored = await copyCommand("local", back);
    expect(restored.stdout).toMatch(new RegExp(`${digests[0]} 8 MiB replaced a damaged copy`));
    expect(restored.stdout.trim().split("\n").at(-1)).toMatch(/^6 blob\(s\): 5 copied and 1 replaced .* to folder .*, 0 already there$/);
    const restoredStore = createLocalBlobStore({ root: back });
    for (const d of digests) expect(await digestOf(restoredStore, d)).toBe(d);
  });

  it("goes on after an interruption with what is missing, and with verify finds a copy whose bytes are wrong though its size is right", async () => {
    const source = tempDir();
    const folder = createLocalBlobStore({ root: source });
    for (let i = 0; i < 6; i++) await folder.put([Buffer.from(`interrupted ${i} ${crypto.randomUUID()}`)] as unknown as AsyncIterable<Uint8Array>);
    const target = createLocalBlobStore({ root: tempDir() });
    const stop = new AbortController();
    await expect(copyBlobs({ from: folder, to: target, concurrency: 1, signal: stop.signal, onProgress: (p) => p.done === 2 && stop.abort(new Error("cut off")) })).rejects.toThrow("cut off");
    const second = await copyBlobs({ from: folder, to: target });
    expect(second).toMatchObject({ total: 6, present: 2, copied: 4, replaced: 0 });

    // Same size, other bytes: only a verifying run notices.
    const targetRoot = dirs.at(-1)!;
    let victim = { sha256: "" };
    for await (const b of target.list()) victim = b;
    const damaged = fs.readFileSync(blobPathIn(targetRoot, victim.sha256));
    damaged[0] ^= 0xff;
    fs.writeFileSync(blobPathIn(targetRoot, victim.sha256), damaged);
    expect(await copyBlobs({ from: folder, to: target })).toMatchObject({ present: 6, replaced: 0 });
    expect(await copyBlobs({ from: folder, to: target, verify: true })).toMatchObject({ present: 5, replaced: 1 });
    expect(await digestOf(target, victim.sha256)).toBe(victim.sha256);
  });
});
