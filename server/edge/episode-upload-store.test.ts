import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { Upload } from "@tus/server";
import { afterAll, describe, expect, it } from "vitest";
import { waitFor } from "../../tests/helpers/factories";
import { buildEpisodeArchive } from "../../agent/archive";
import type { EpisodeFile } from "../../agent/layout";
import { ARCHIVE_FORMAT, CHECKSUMS_NAME } from "./edge.schemas";
import { EpisodeUploadStore } from "./episode-upload-store";

// The store on its own, as the portal uses it: archives made by the agent's code, sent in
// pieces that end anywhere, with the portal "restarting" (a new store over the same folders)
// between them.

const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-upload-store-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function files(dir: string, bigFrame = 70_000): EpisodeFile[] {
  fs.mkdirSync(dir, { recursive: true });
  const make = (rel: string, size: number): EpisodeFile => {
    const abs = path.join(dir, rel.replaceAll("/", "_"));
    fs.writeFileSync(abs, crypto.randomBytes(size));
    return { rel, abs, size, mtimeMs: 0 };
  };
  return [
    make("images/front/episode-000000/frame-000000.png", bigFrame),
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

async function setUp(name: string, bigFrame?: number) {
  const repoId = `lab/${name}`;
  const source = files(path.join(root, "source", name), bigFrame);
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
    // Only the record that it is done is left, until it expires.
    expect(fs.readdirSync(options.dir).filter((n) => n.startsWith(id))).toEqual([`${id}.json`]);
  });

  it("saves its offset as bytes reach the disk, so a portal stopped mid-request resumes from what its files hold", async () => {
    const { source, archive, body, raw, options, id } = await setUp("checkpoint", 6_000_000);
    // A request that sends 4 MB and goes silent, as one whose portal process was killed: the
    // store that received it is never heard from again.
    const sent = 4_000_000;
    const silent = Readable.from(
      (async function* () {
        for (let at = 0; at < sent; at += 65_536) yield body.subarray(at, Math.min(sent, at + 65_536));
        await new Promise(() => {});
      })(),
    );
    void new EpisodeUploadStore(options).write(silent, id, 0);
    const restarted = new EpisodeUploadStore(options);
    const { offset } = await waitFor(async () => {
      const upload = await restarted.getUpload(id);
      return upload.offset >= sent - 1024 * 1024 - 65_536 ? upload : null;
    });
    expect(offset).toBeLessThanOrEqual(sent);
    const part = path.join(raw, "images", "front", "episode-000000", `frame-000000.png.part-${id}`);
    const partStart = body.indexOf(fs.readFileSync(source[0].abs).subarray(0, 64));
    await waitFor(async () => fs.statSync(part).size === sent - partStart);
    // The restarted portal takes ten bytes where it counted: the bytes stored past the count are cut off.
    expect(await patch(restarted, id, body, offset, offset + 10)).toBe(offset + 10);
    expect(fs.statSync(part).size).toBe(offset + 10 - partStart);
    expect(await patch(restarted, id, body, offset + 10, archive.size, 65_536)).toBe(archive.size);
    await restarted.commit(id);
    for (const f of source) expect(fs.readFileSync(path.join(raw, f.rel)).equals(fs.readFileSync(f.abs))).toBe(true);
  });

  it("lowers its offset to what a file holds when the disk lost bytes it had counted, and says so with 409", async () => {
    const { source, archive, body, raw, options, id } = await setUp("lost");
    expect(await patch(new EpisodeUploadStore(options), id, body, 0, 40_000)).toBe(40_000);
    const part = path.join(raw, "images", "front", "episode-000000", `frame-000000.png.part-${id}`);
    const partStart = 40_000 - fs.statSync(part).size;
    fs.truncateSync(part, 10_000);
    const restarted = new EpisodeUploadStore(options);
    await expect(patch(restarted, id, body, 40_000, archive.size)).rejects.toMatchObject({ status_code: 409, body: expect.stringMatching(/holds \d+ bytes of this upload, fewer than the 40000/) });
    const { offset } = await restarted.getUpload(id);
    expect(offset).toBe(partStart + 10_000);
    expect(await patch(restarted, id, body, offset, archive.size)).toBe(archive.size);
    await restarted.commit(id);
    for (const f of source) expect(fs.readFileSync(path.join(raw, f.rel)).equals(fs.readFileSync(f.abs))).toBe(true);
  });

  it("answers a finished upload as done; finishing it again is harmless, and it expires without its files", async () => {
    const { source, archive, body, raw, options, id } = await setUp("finished");
    expect(await patch(new EpisodeUploadStore(options), id, body, 0, archive.size)).toBe(archive.size);
    // The portal stopped halfway through moving the files into place.
    const first = path.join(raw, source[0].rel);
    fs.renameSync(`${first}.part-${id}`, first);
    const restarted = new EpisodeUploadStore(options);
    expect(await restarted.commit(id)).toEqual({ files: source.length });
    expect(await restarted.commit(id)).toEqual({ files: source.length });
    expect((await restarted.getUpload(id)).offset).toBe(archive.size);
    expect(await patch(restarted, id, body, archive.size, archive.size)).toBe(archive.size);
    for (const f of source) expect(fs.readFileSync(path.join(raw, f.rel)).equals(fs.readFileSync(f.abs))).toBe(true);
    // Expiry counts from the last bytes saved, and a held upload is left alone.
    const dayOld = new Date(Date.now() - 2 * 86_400_000);
    const info = JSON.parse(fs.readFileSync(path.join(options.dir, `${id}.json`), "utf8"));
    fs.writeFileSync(path.join(options.dir, `${id}.json`), JSON.stringify({ ...info, creation_date: dayOld.toISOString() }));
    expect(await new EpisodeUploadStore({ ...options, expireAfterMs: 86_400_000 }).deleteExpired()).toBe(0);
    expect(await new EpisodeUploadStore({ ...options, expireAfterMs: -1 }).deleteExpired({ hold: async () => null })).toBe(0);
    expect(fs.existsSync(path.join(options.dir, `${id}.json`))).toBe(true);
    fs.utimesSync(path.join(options.dir, `${id}.json`), dayOld, dayOld);
    expect(await new EpisodeUploadStore({ ...options, expireAfterMs: 86_400_000 }).deleteExpired({ hold: (_id, work) => work() })).toBe(1);
    expect(fs.existsSync(path.join(options.dir, `${id}.json`))).toBe(false);
    for (const f of source) expect(fs.existsSync(path.join(raw, f.rel))).toBe(true);
  });

  it("fails the upload, naming the file, when bytes stored before the machine restarted were damaged on disk", async () => {
    const { source, archive, body, raw, options, id, sumsHeader } = await setUp("damaged");
    const first = await patch(new EpisodeUploadStore({ ...options, bootId: "before" }), id, body, 0, sumsHeader);
    const part = fs.readdirSync(path.join(raw, "images", "front", "episode-000000")).find((n) => n.startsWith("frame-000000.png.part-"))!;
    const file = path.join(raw, "images", "front", "episode-000000", part);
    const damaged = fs.readFileSync(file);
    damaged[10] ^= 0xff;
    fs.writeFileSync(file, damaged);
    // After a reboot (or on another machine) the recorded sha256 are not trusted: the files are read back.
    await expect(patch(new EpisodeUploadStore({ ...options, bootId: "after" }), id, body, first, archive.size)).rejects.toMatchObject({ status_code: 400, body: expect.stringMatching(/"images\/front\/episode-000000\/frame-000000.png" arrived damaged/) });
    // Nothing of the episode is kept, and the upload is gone.
    expect(fs.readdirSync(path.join(raw, "images", "front", "episode-000000"))).toEqual([]);
    expect(fs.existsSync(path.join(options.dir, `${id}.json`))).toBe(false);
    expect(source.length).toBe(4);
  });

  it("keeps nothing of an upload in memory: each request may come to another process, which takes the sha256 recorded for files already whole", async () => {
    const { source, archive, body, raw, options, id, sumsHeader } = await setUp("processes", 200_000);
    const dataAt = body.indexOf(fs.readFileSync(source[3].abs).subarray(0, 64));
    // Each request to a store that has never seen the upload, cut anywhere: inside the big frame, past it, inside the data file.
    const cuts = [0, 100_000, dataAt + 100, sumsHeader, archive.size];
    const digests = path.join(options.dir, `${id}.digests`);
    const recorded: string[][] = [];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const store = new EpisodeUploadStore({ ...options, bootId: "this-boot" });
      expect(await patch(store, id, body, cuts[i], cuts[i + 1], 7_000)).toBe(cuts[i + 1]);
      if (i < cuts.length - 2) recorded.push(fs.existsSync(digests) ? fs.readFileSync(digests, "utf8").trim().split("\n").map((l) => l.split(" ")[0]).sort() : []);
    }
    // Frames 0 and 1 are recorded once whole; the data file once its last byte is in; the empty frame never (it has no bytes).
    expect(recorded).toEqual([[], ["0", "1"], ["0", "1", "3"]]);
    await new EpisodeUploadStore(options).commit(id);
    for (const f of source) expect(fs.readFileSync(path.join(raw, f.rel)).equals(fs.readFileSync(f.abs))).toBe(true);
    expect(fs.existsSync(digests)).toBe(false);
  });

  it("drops the recorded sha256 of a file that is written again", async () => {
    const { source, archive, body, raw, options, id } = await setUp("again", 200_000);
    const frameEnd = body.indexOf(fs.readFileSync(source[0].abs).subarray(-64)) + 64;
    const store = new EpisodeUploadStore({ ...options, bootId: "this-boot" });
    expect(await patch(store, id, body, 0, frameEnd + 600)).toBe(frameEnd + 600);
    expect(fs.readFileSync(path.join(options.dir, `${id}.digests`), "utf8")).toMatch(/^0 [0-9a-f]{64} this-boot\n/);
    // The record lost its last save (a process killed before its count reached the disk): the
    // frame's end is past the offset, so its line goes and the frame is hashed afresh.
    const info = JSON.parse(fs.readFileSync(path.join(options.dir, `${id}.json`), "utf8"));
    fs.writeFileSync(path.join(options.dir, `${id}.json`), JSON.stringify({ ...info, offset: frameEnd - 1000 }));
    const next = new EpisodeUploadStore({ ...options, bootId: "this-boot" });
    expect(await patch(next, id, body, frameEnd - 1000, frameEnd - 1000)).toBe(frameEnd - 1000);
    expect(fs.existsSync(path.join(options.dir, `${id}.digests`))).toBe(false);
    expect(await patch(next, id, body, frameEnd - 1000, archive.size)).toBe(archive.size);
    await store.commit(id);
    for (const f of source) expect(fs.readFileSync(path.join(raw, f.rel)).equals(fs.readFileSync(f.abs))).toBe(true);
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
