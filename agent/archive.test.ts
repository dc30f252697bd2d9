import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tar from "tar-stream";
import { describe, expect, it } from "vitest";
import { CHECKSUMS_NAME, MANIFEST_NAME } from "../server/edge/edge.schemas";
import { buildEpisodeArchive } from "./archive";
import type { EpisodeFile } from "./layout";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-archive-"));
function file(rel: string, size: number): EpisodeFile {
  const abs = path.join(dir, crypto.randomBytes(4).toString("hex"));
  fs.writeFileSync(abs, crypto.randomBytes(size));
  return { rel, abs, size, mtimeMs: 0 };
}

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe("episode archive", () => {
  const files = [file("images/front/episode-000000/frame-000000.png", 1000), file("images/front/episode-000000/frame-000001.png", 512), file("images/a_camera_with_a_rather_long_name_to_need_the_ustar_prefix-xxxxxxxxxxxxxxx/episode-000000/frame-000000.png", 0), file("data/episode-000000.jsonl", 77)];

  it("is a tar any reader unpacks: the manifest, every file byte for byte, then their sha256 sums", async () => {
    const archive = await buildEpisodeArchive({ repoId: "lab/x", episodeIndex: 0, mode: "edge", files });
    const bytes = await collect(archive.range(0, archive.size));
    expect(bytes.length).toBe(archive.size);
    const extract = tar.extract();
    const seen: [string, Buffer][] = [];
    const done = (async () => {
      for await (const entry of extract) seen.push([entry.header.name, await collect(entry)]);
    })();
    extract.end(bytes);
    await done;
    expect(seen.map(([name]) => name)).toEqual([MANIFEST_NAME, ...files.map((f) => f.rel), CHECKSUMS_NAME]);
    expect(JSON.parse(seen[0][1].toString())).toEqual(archive.manifest);
    for (const [i, f] of files.entries()) expect(seen[i + 1][1].equals(fs.readFileSync(f.abs))).toBe(true);
    // As `sha256sum` prints them, so `sha256sum -c` checks an unpacked archive.
    const sha = (f: EpisodeFile) => crypto.createHash("sha256").update(fs.readFileSync(f.abs)).digest("hex");
    expect(seen.at(-1)![1].toString()).toBe(files.map((f) => `${sha(f)}  ${f.rel}\n`).join(""));
  });

  it("gives the same bytes for any range, again and again, a resumed range hashing what it did not send (what resuming relies on)", async () => {
    const a = await buildEpisodeArchive({ repoId: "lab/x", episodeIndex: 0, mode: "edge", files });
    const b = await buildEpisodeArchive({ repoId: "lab/x", episodeIndex: 0, mode: "edge", files });
    const whole = await collect(a.range(0, a.size));
    expect((await collect(b.range(0, b.size))).equals(whole)).toBe(true);
    for (const [start, end] of [[0, 1], [511, 1513], [1600, 2100], [a.size - 700, a.size], [1234, a.size + 100]]) {
      expect((await collect(a.range(start, end))).equals(whole.subarray(start, end))).toBe(true);
    }
    // A fresh archive asked only for its end (an agent restarted after sending the files).
    const c = await buildEpisodeArchive({ repoId: "lab/x", episodeIndex: 0, mode: "edge", files });
    expect((await collect(c.range(c.size - 600, c.size))).equals(whole.subarray(c.size - 600))).toBe(true);
  });

  it("hashes a large file sent in chunks that follow each other as it sends them, and one whose chunk was cut short from disk", async () => {
    const video = file("videos/front/episode-000000.mp4", 9 * 1024 * 1024 + 123);
    const episode = [video, file("data/episode-000000.jsonl", 50)];
    const build = () => buildEpisodeArchive({ repoId: "lab/x", episodeIndex: 0, mode: "local", files: episode });
    const reference = await build();
    const whole = await collect(reference.range(0, reference.size));
    const sumsAt = whole.lastIndexOf(Buffer.from(CHECKSUMS_NAME));
    const chunk = 1024 * 1024;

    // A chunk cut short, and the upload resumed a little before where it stopped.
    const resumed = await build();
    await collect(resumed.range(0, 3 * chunk));
    for await (const piece of resumed.range(3 * chunk, 6 * chunk)) if (piece) break;
    for (let at = 5 * chunk; at < sumsAt; at += chunk) await collect(resumed.range(at, Math.min(sumsAt, at + chunk)));
    expect((await collect(resumed.range(sumsAt, resumed.size))).equals(whole.subarray(sumsAt))).toBe(true);

    // Chunk after chunk: the sums are of the bytes sent, not read again (here the file changes after).
    const chunked = await build();
    for (let at = 0; at < sumsAt; at += chunk) await collect(chunked.range(at, Math.min(sumsAt, at + chunk)));
    const original = fs.readFileSync(video.abs);
    fs.writeFileSync(video.abs, crypto.randomBytes(video.size));
    try {
      expect((await collect(chunked.range(sumsAt, chunked.size))).equals(whole.subarray(sumsAt))).toBe(true);
    } finally {
      fs.writeFileSync(video.abs, original);
    }
  });
});
