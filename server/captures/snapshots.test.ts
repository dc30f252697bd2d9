import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BlobStore } from "../storage/blob-store";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { writePly } from "./ply";
import { serveSnapshotBlob } from "./serve-snapshot";
import { storeSnapshot } from "./snapshots.service";
import { encodeSpz } from "./spz";
import { randomCloud } from "./test-clouds";

let root: string;
let blobs: BlobStore;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-captures-"));
  blobs = createLocalBlobStore({ root });
});
afterAll(() => fs.rm(root, { recursive: true, force: true }));

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("storeSnapshot", () => {
  it("stores a PLY and its SPZ conversion, with metadata", async () => {
    const cloud = randomCloud(300, 3, 9);
    cloud.positions[0] = -1.9;
    const ply = writePly(cloud);
    const meta = await storeSnapshot({ blobs, file: ply });
    expect(meta).toMatchObject({ format: "ply", splats: 300, shDegree: 3, source: { sha256: sha(ply), bytes: ply.length } });
    expect(meta.spz.bytes).toBeLessThan(ply.length / 4);
    expect(await blobs.has(meta.spz.sha256)).toBe(true);
    expect(meta.bounds.min[0]).toBeCloseTo(Math.min(...Array.from({ length: 300 }, (_, i) => cloud.positions[i * 3])), 5);
    expect(meta.bounds.max[2]).toBeLessThanOrEqual(2);
  });

  it("stores a valid SPZ once and refuses other files", async () => {
    const spz = encodeSpz(randomCloud(50, 1, 4));
    const meta = await storeSnapshot({ blobs, file: spz });
    expect(meta).toMatchObject({ format: "spz", splats: 50, shDegree: 1 });
    expect(meta.spz).toEqual(meta.source);
    await expect(storeSnapshot({ blobs, file: Buffer.from("hello") })).rejects.toThrow(/must be a binary little-endian/);
    await expect(storeSnapshot({ blobs, file: zlib.gzipSync(Buffer.alloc(40)) })).rejects.toThrow(/not an SPZ/);
  });
});

describe("serveSnapshotBlob", () => {
  it("answers with an ETag, a 304 and byte ranges", async () => {
    const spz = encodeSpz(randomCloud(100, 0, 2));
    const { spz: stored } = await storeSnapshot({ blobs, file: spz });
    const whole = await serveSnapshotBlob({ blobs, sha256: stored.sha256, format: "spz", headers: new Headers() });
    expect(whole.status).toBe(200);
    expect(whole.headers.get("etag")).toBe(`"${stored.sha256}"`);
    expect(Buffer.from(await whole.arrayBuffer()).equals(spz)).toBe(true);
    const again = await serveSnapshotBlob({ blobs, sha256: stored.sha256, format: "spz", headers: new Headers({ "if-none-match": `"${stored.sha256}"` }) });
    expect(again.status).toBe(304);
    const part = await serveSnapshotBlob({ blobs, sha256: stored.sha256, format: "spz", headers: new Headers({ range: "bytes=10-19" }) });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 10-19/${spz.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(spz.subarray(10, 20))).toBe(true);
    const past = await serveSnapshotBlob({ blobs, sha256: stored.sha256, format: "spz", headers: new Headers({ range: `bytes=${spz.length + 5}-` }) });
    expect(past.status).toBe(416);
    await expect(serveSnapshotBlob({ blobs, sha256: "0".repeat(64), format: "spz", headers: new Headers() })).rejects.toThrow(/No snapshot blob/);
  });
});
