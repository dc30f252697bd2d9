import crypto from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BlobStore } from "./blob-store";
import { createLocalBlobStore } from "./local-blob-store";

let root: string;
let store: BlobStore;

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-blobs-"));
  store = createLocalBlobStore({ root });
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const sha256 = (data: Uint8Array | string) => crypto.createHash("sha256").update(data).digest("hex");
const blobFile = (digest: string) => path.join(root, "sha256", digest.slice(0, 2), digest.slice(2, 4), digest);

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Every file under the root, relative to it: what a failed write must not leave behind. */
async function filesUnder(dir = root): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(root, path.join(e.parentPath, e.name)));
}

/** Random chunks, hashed on the side as they are produced. */
function generated(totalBytes: number, chunkBytes = 64 * 1024) {
  const hash = crypto.createHash("sha256");
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (let sent = 0; sent < totalBytes; sent += chunkBytes) {
      const chunk = crypto.randomFillSync(Buffer.allocUnsafe(Math.min(chunkBytes, totalBytes - sent)));
      hash.update(chunk);
      yield chunk;
    }
  }
  return { chunks, digest: () => hash.digest("hex") };
}

describe("local blob store", () => {
  it("round-trips a 64 MiB stream, writing it out as it arrives", async () => {
    const total = 64 * 1024 * 1024;
    const source = generated(total);
    // Memory use is judged by what has been pulled from the source but is not yet on disk:
    // a store that buffered the stream would let this grow to the whole stream.
    let pulled = 0;
    let maxAhead = 0;
    const stored = await store.put(
      (async function* () {
        let n = 0;
        for await (const chunk of source.chunks()) {
          if (n++ % 16 === 0) {
            const [part] = await fs.readdir(path.join(root, "tmp"));
            const onDisk = part ? (await fs.stat(path.join(root, "tmp", part))).size : 0;
            maxAhead = Math.max(maxAhead, pulled - onDisk);
          }
          pulled += chunk.length;
          yield chunk;
        }
      })(),
    );
    expect(stored).toEqual({ sha256: source.digest(), bytes: total });
    expect(maxAhead).toBeLessThan(4 * 1024 * 1024);

    const readBack = crypto.createHash("sha256");
    let readBytes = 0;
    for await (const chunk of await store.get(stored.sha256)) {
      readBack.update(chunk as Buffer);
      readBytes += (chunk as Buffer).length;
    }
    expect(readBack.digest("hex")).toBe(stored.sha256);
    expect(readBytes).toBe(total);
    expect(await store.stat(stored.sha256)).toEqual({ bytes: total });
    expect(await filesUnder()).toEqual([path.join("sha256", stored.sha256.slice(0, 2), stored.sha256.slice(2, 4), stored.sha256)]);
  });

  it("accepts a Readable of Buffer and Uint8Array chunks", async () => {
    const stored = await store.put(Readable.from([Buffer.from("hello "), new TextEncoder().encode("world")]));
    expect(stored).toEqual({ sha256: sha256("hello world"), bytes: 11 });
    expect((await readAll(await store.get(stored.sha256))).toString()).toBe("hello world");
  });

  it("stores empty content", async () => {
    const stored = await store.put(Readable.from([]));
    expect(stored).toEqual({ sha256: sha256(""), bytes: 0 });
    expect((await readAll(await store.get(stored.sha256))).length).toBe(0);
  });

  it("reads inclusive byte ranges, clamped to the end, for resumable downloads", async () => {
    const content = Buffer.from("0123456789abcdef");
    const { sha256: digest } = await store.put(Readable.from([content]));
    const read = async (range: { start?: number; end?: number }) => (await readAll(await store.get(digest, range))).toString();
    expect(await read({ start: 2, end: 5 })).toBe("2345");
    expect(await read({ start: 10 })).toBe("abcdef");
    expect(await read({ end: 3 })).toBe("0123");
    expect(await read({ start: 15, end: 15 })).toBe("f");
    expect(await read({ start: 12, end: 1000 })).toBe("cdef");
    await expect(store.get(digest, { start: 16 })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringContaining("past the end") });
    await expect(store.get(digest, { start: 5, end: 4 })).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(store.get(digest, { start: -1 })).rejects.toMatchObject({ code: "BAD_REQUEST" });
  });

  it("stores existing content once and still reports it, marking it kept for the sweep", async () => {
    const first = await store.put(Readable.from([Buffer.from("same bytes")]));
    const old = new Date(Date.now() - 3_600_000);
    await fs.utimes(blobFile(first.sha256), old, old);
    const before = await fs.stat(blobFile(first.sha256));
    const second = await store.put(Readable.from([Buffer.from("same "), Buffer.from("bytes")]));
    expect(second).toEqual(first);
    const after = await fs.stat(blobFile(first.sha256));
    // The same file, not written again; its mtime says it was just wanted.
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBeGreaterThan(Date.now() - 60_000);
    expect(await filesUnder()).toHaveLength(1);
  });

  it("keeps concurrent puts of the same content whole", async () => {
    const source = generated(3 * 1024 * 1024, 16 * 1024);
    const chunks: Uint8Array[] = [];
    for await (const c of source.chunks()) chunks.push(c);
    const digest = source.digest();
    const results = await Promise.all(Array.from({ length: 8 }, () => store.put(Readable.from(chunks))));
    for (const r of results) expect(r).toEqual({ sha256: digest, bytes: 3 * 1024 * 1024 });
    expect(sha256(await fs.readFile(blobFile(digest)))).toBe(digest);
    expect(await filesUnder()).toEqual([path.relative(root, blobFile(digest))]);
  });

  it("refuses content whose sha256 does not match, leaving neither blob nor temp file", async () => {
    const claimed = sha256("what the sender meant to send");
    await expect(store.put(Readable.from([Buffer.from("what arrived")]), { expectedSha256: claimed })).rejects.toMatchObject({
      code: "BAD_REQUEST",
      message: expect.stringContaining(claimed),
    });
    expect(await store.has(claimed)).toBe(false);
    expect(await store.has(sha256("what arrived"))).toBe(false);
    expect(await filesUnder()).toEqual([]);

    const ok = await store.put(Readable.from([Buffer.from("what arrived")]), { expectedSha256: sha256("what arrived") });
    expect(ok.sha256).toBe(sha256("what arrived"));
  });

  it("refuses content over maxBytes, leaving nothing behind", async () => {
    const data = Buffer.alloc(1000, 7);
    await expect(store.put(Readable.from([data.subarray(0, 600), data.subarray(600)]), { maxBytes: 999 })).rejects.toMatchObject({
      code: "BAD_REQUEST",
      message: expect.stringContaining("larger than"),
    });
    expect(await filesUnder()).toEqual([]);
    expect(await store.put(Readable.from([data]), { maxBytes: 1000 })).toEqual({ sha256: sha256(data), bytes: 1000 });
  });

  it("stops and cleans up when aborted mid-stream", async () => {
    const controller = new AbortController();
    let sent = 0;
    async function* stalling(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 4; i++) {
        sent++;
        yield Buffer.alloc(64 * 1024, i);
      }
      // The sender goes quiet; only the abort can end this put.
      await new Promise(() => {});
    }
    const put = store.put(stalling(), { signal: controller.signal });
    while (sent < 4) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
    expect((await filesUnder()).filter((f) => f.startsWith("tmp"))).toHaveLength(1);
    controller.abort(new Error("Cancelled"));
    await expect(put).rejects.toThrow("Cancelled");
    expect(await filesUnder()).toEqual([]);
  });

  it("does not start when the signal is already aborted", async () => {
    const controller = new AbortController();
    controller.abort(new Error("Cancelled"));
    await expect(store.put(Readable.from([Buffer.from("x")]), { signal: controller.signal })).rejects.toThrow("Cancelled");
    expect(await filesUnder()).toEqual([]);
  });

  it("cleans up when the source fails", async () => {
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.from("partial");
      throw new Error("connection reset by the agent");
    }
    await expect(store.put(failing())).rejects.toThrow("connection reset by the agent");
    expect(await filesUnder()).toEqual([]);
  });

  it("reports absent blobs, and deletes idempotently", async () => {
    const { sha256: digest } = await store.put(Readable.from([Buffer.from("short-lived")]));
    expect(await store.has(digest)).toBe(true);
    await store.delete(digest);
    expect(await store.has(digest)).toBe(false);
    expect(await store.stat(digest)).toBeNull();
    await expect(store.get(digest)).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining(digest) });
    await expect(store.delete(digest)).resolves.toBeUndefined();
  });

  it.each([
    ["a path traversal", "../../etc/passwd"],
    ["a traversal padded to 64 characters", `${"../".repeat(20)}etc/`],
    ["uppercase hex", sha256("x").toUpperCase()],
    ["a short digest", "abc123"],
    ["a digest with a trailing newline", `${sha256("x")}\n`],
    ["an empty string", ""],
  ])("rejects %s as a blob id", async (_, hostile) => {
    await expect(store.has(hostile)).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(store.stat(hostile)).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(store.get(hostile)).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(store.delete(hostile)).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(store.put(Readable.from([Buffer.from("x")]), { expectedSha256: hostile })).rejects.toMatchObject({ code: "BAD_REQUEST" });
    expect(await filesUnder()).toEqual([]);
  });
});
