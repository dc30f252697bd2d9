import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { Upload } from "@tus/server";
import { afterAll, describe, expect, it } from "vitest";
import { buildEpisodeArchive } from "../../agent/archive";
import type { EpisodeFile } from "../../agent/layout";
import { ARCHIVE_FORMAT, CHECKSUMS_NAME } from "./edge.schemas";
import { EpisodeUploadStore } from "./episode-upload-store";

// The store on its own, as the portal uses it: archives made by the agent's code, sent in
// pieces that end anywhere, with the portal "restarting" (a new store over the same folders)
// between them.

const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-upload-store-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function files(dir: string): EpisodeFile[] {
  fs.mkdirSync(dir, { recursive: true });
  const make = (rel: string, size: number): EpisodeFile => {
    const abs = path.join(dir, rel.replaceAll("/", "_"));
    fs.writeFileSync(abs, crypto.randomBytes(size));
    return { rel, abs, size, mtimeMs: 0 };
  };
  return [
    make("images/front/episode-000000/frame-000000.png", 70_000),
    make("images/front/episode-000000/frame-000001.png", 513),
    make("images/front/episode-000000/frame-000002.png", 0),
    make("data/episode-000000.jsonl", 4_000),
  ];
}

async function bytesOf(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Sends `body` from `from` to `to` in pieces of `piece` bytes, as one PATCH would. */
const patch = (store: EpisodeUploadStore, id: string, body: Buffer, from: number, to: number, piece = 1000) =>
  store.write(
    Readable.from(
      (function* () {
        for (let at = from; at < to; at += piece) yield body.subarray(at, Math.min(to, at + piece));
      })(),
    ),
    id,
    from,
  );

async function setUp(name: string) {
  const repoId = `lab/${name}`;
  const source = files(path.join(root, "source", name));
  const archive = await buildEpisodeArchive({ repoId, episodeIndex: 0, mode: "edge", files: source });
  const body = await bytesOf(archive.range(0, archive.size));
  const raw = path.join(root, "raw", name);
  const options = { dir: path.join(root, "tus"), rawDir: () => raw, maxBytes: 1e9, expireAfterMs: 86_400_000 };
  const id = crypto.randomBytes(16).toString("hex");
  const metadata = { format: ARCHIVE_FORMAT, repoId, episodeIndex: "0", mode: "edge", manifestSha256: archive.manifestSha256, orgId: crypto.randomUUID() };
  await new EpisodeUploadStore(options).create(new Upload({ id, size: archive.size, offset: 0, metadata }));
  // Where the sums' tar header starts, and their text after it.
  const sumsHeader = body.lastIndexOf(Buffer.from(CHECKSUMS_NAME));
  return { source, archive, body, raw, options, id, sumsHeader, sumsText: sumsHeader + 512 };
}

describe("episode upload store", () => {
  it("finishes an upload a restarted portal resumes at any byte, inside a file or inside the sums", async () => {
    const { source, archive, body, raw, options, id, sumsText } = await setUp("restart");
    const cuts = [700, 40_000, sumsText - 3, sumsText + 100, archive.size - 40];
    let at = 0;
    for (const cut of [...cuts, archive.size]) {
      // A new store each time: nothing of the last one's memory is left.
      at = await patch(new EpisodeUploadStore(options), id, body, at, cut);
      expect(at).toBe(cut);
    }
    const { files: count } = await new EpisodeUploadStore(options).commit(id);
    expect(count).toBe(source.length);
    for (const f of source) expect(fs.readFileSync(path.join(raw, f.rel)).equals(fs.readFileSync(f.abs))).toBe(true);
    expect(fs.readdirSync(options.dir).filter((n) => n.startsWith(id))).toEqual([]);
  });

  it("fails the upload, naming the file, when bytes stored before a restart were damaged on disk", async () => {
    const { source, archive, body, raw, options, id, sumsHeader } = await setUp("damaged");
    const first = await patch(new EpisodeUploadStore(options), id, body, 0, sumsHeader);
    const part = fs.readdirSync(path.join(raw, "images", "front", "episode-000000")).find((n) => n.startsWith("frame-000000.png.part-"))!;
    const file = path.join(raw, "images", "front", "episode-000000", part);
    const damaged = fs.readFileSync(file);
    damaged[10] ^= 0xff;
    fs.writeFileSync(file, damaged);
    await expect(patch(new EpisodeUploadStore(options), id, body, first, archive.size)).rejects.toMatchObject({ status_code: 400, body: expect.stringMatching(/"images\/front\/episode-000000\/frame-000000.png" arrived damaged/) });
    // Nothing of the episode is kept, and the upload is gone.
    expect(fs.readdirSync(path.join(raw, "images", "front", "episode-000000"))).toEqual([]);
    expect(fs.existsSync(path.join(options.dir, `${id}.json`))).toBe(false);
    expect(source.length).toBe(4);
  });

  it("takes thousands of tiny files in one request without holding a file open for each", async () => {
    const dir = path.join(root, "source", "tiny");
    fs.mkdirSync(dir, { recursive: true });
    const tiny: EpisodeFile[] = Array.from({ length: 3000 }, (_, i) => {
      const abs = path.join(dir, `f${i}`);
      fs.writeFileSync(abs, `frame ${i}`);
      return { rel: `images/front/episode-000000/frame-${String(i).padStart(6, "0")}.png`, abs, size: fs.statSync(abs).size, mtimeMs: 0 };
    });
    tiny.push({ rel: "data/episode-000000.jsonl", abs: tiny[0].abs, size: tiny[0].size, mtimeMs: 0 });
    const archive = await buildEpisodeArchive({ repoId: "lab/tiny", episodeIndex: 0, mode: "edge", files: tiny });
    const body = await bytesOf(archive.range(0, archive.size));
    const raw = path.join(root, "raw", "tiny");
    const store = new EpisodeUploadStore({ dir: path.join(root, "tus"), rawDir: () => raw, maxBytes: 1e9, expireAfterMs: 86_400_000 });
    const id = crypto.randomBytes(16).toString("hex");
    await store.create(new Upload({ id, size: archive.size, offset: 0, metadata: { format: ARCHIVE_FORMAT, repoId: "lab/tiny", episodeIndex: "0", mode: "edge", manifestSha256: archive.manifestSha256, orgId: crypto.randomUUID() } }));
    const openFds = () => fs.readdirSync("/proc/self/fd").length;
    const before = openFds();
    let most = 0;
    const watch = setInterval(() => (most = Math.max(most, openFds())), 1);
    try {
      expect(await patch(store, id, body, 0, archive.size, 65_536)).toBe(archive.size);
    } finally {
      clearInterval(watch);
    }
    expect(most - before).toBeLessThan(100);
    await store.commit(id);
    expect(fs.readFileSync(path.join(raw, "images", "front", "episode-000000", "frame-002999.png"), "utf8")).toBe("frame 2999");
  });

  it("refuses sums that do not list the manifest's files in its order", async () => {
    const { archive, body, options, id } = await setUp("sums");
    const sumsAt = body.lastIndexOf(Buffer.from("images/front/episode-000000/frame-000001.png\n"));
    expect(sumsAt).toBeGreaterThan(0);
    const forged = Buffer.from(body);
    forged.write("X", sumsAt, "latin1");
    await expect(patch(new EpisodeUploadStore(options), id, forged, 0, archive.size, 4096)).rejects.toMatchObject({ status_code: 400, body: expect.stringMatching(/do not list "images\/front\/episode-000000\/frame-000001.png"/) });
  });
});
