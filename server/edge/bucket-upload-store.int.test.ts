import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { Upload } from "@tus/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildEpisodeArchive } from "../../agent/archive";
import type { EpisodeFile } from "../../agent/layout";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { noiseBytes } from "../../tests/helpers/noise";
import { swiftBucket, swiftSkipReason, type SwiftBucket } from "../../tests/helpers/s3-swift";
import type { OrgActor } from "../auth/roles";
import { namedBlobs } from "../storage/blob-refs";
import { putPiece } from "../storage/upload-pieces";
import type { S3BlobStore } from "../storage/s3-blob-store";
import { arrivedEpisodeUpload, BucketEpisodeUploadStore } from "./bucket-upload-store";
import { ARCHIVE_FORMAT, CHECKSUMS_NAME } from "./edge.schemas";
import { EpisodeUploadStore } from "./episode-upload-store";
import { completeEpisode } from "./episodes.service";
import { createEdgeUploadServer, EDGE_UPLOADS_PATH } from "./uploads.service";

// An agent's episode upload through a bucket (a real S3 server, Swift's gateway), its requests
// landing on two web processes (two stores, two store clients) with no folder in common: the
// upload's state is its row, its bytes are blobs.

const skip = swiftSkipReason();
const db = testDb();
const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-bucket-upload-"));
const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
let swift: SwiftBucket | undefined;
let actor: OrgActor;
let stores: S3BlobStore[];
const storeOn = (web: number) => new BucketEpisodeUploadStore({ db, blobs: stores[web], maxBytes: 1e9, expireAfterMs: 86_400_000 });

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "operator")).actor;
  if (skip) return;
  swift = await swiftBucket("gantry-edge-uploads", "edge/");
  stores = [swift.store({ db: () => db }), swift.store({ db: () => db })];
}, 180_000);
afterAll(async () => {
  swift?.close();
  fs.rmSync(root, { recursive: true, force: true });
  await db.$disconnect();
});

/** An episode's files: a frame longer than a piece (so it arrives as pieces), small ones, an empty one, the data. */
function episodeFiles(dir: string): EpisodeFile[] {
  fs.mkdirSync(dir, { recursive: true });
  const make = (rel: string, content: Buffer): EpisodeFile => {
    const abs = path.join(dir, rel.replaceAll("/", "_"));
    fs.writeFileSync(abs, content);
    return { rel, abs, size: content.length, mtimeMs: 0 };
  };
  return [
    make("images/front/episode-000000/frame-000000.png", noiseBytes(9_500_000, 3)),
    make("images/front/episode-000000/frame-000001.png", noiseBytes(513, 4)),
    make("images/front/episode-000000/frame-000002.png", Buffer.alloc(0)),
    make("data/episode-000000.jsonl", Buffer.from(`${JSON.stringify({ frame_index: 0, timestamp: 0, "observation.state": [0], action: [0] })}\n`)),
  ];
}

async function setUp(name: string) {
  const repoId = `lab/${name}-${crypto.randomBytes(3).toString("hex")}`;
  const source = episodeFiles(path.join(root, name));
  const archive = await buildEpisodeArchive({ repoId, episodeIndex: 0, mode: "edge", files: source });
  const chunks: Buffer[] = [];
  for await (const c of archive.range(0, archive.size)) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  const id = crypto.randomBytes(16).toString("hex");
  const metadata = { format: ARCHIVE_FORMAT, repoId, episodeIndex: "0", mode: "edge", manifestSha256: archive.manifestSha256, orgId: actor.orgId, userId: actor.userId };
  await storeOn(0).create(new Upload({ id, size: archive.size, offset: 0, metadata }));
  const big = body.indexOf(fs.readFileSync(source[0].abs).subarray(0, 64));
  return { repoId, source, body, id, size: archive.size, big, sumsText: body.lastIndexOf(Buffer.from(CHECKSUMS_NAME)) + 512 };
}

/** Sends `body` from `from` to `to` in network-sized chunks, as one PATCH would; `breakAfter`: then the connection breaks. */
function patch(store: BucketEpisodeUploadStore, id: string, body: Buffer, from: number, to: number, { breakAfter }: { breakAfter?: boolean } = {}) {
  return store.write(
    Readable.from(
      (async function* () {
        for (let at = from; at < to; at += 65_536) yield body.subarray(at, Math.min(to, at + 65_536));
        if (breakAfter) throw new Error("the connection was reset");
      })(),
    ),
    id,
    from,
  );
}

describe.skipIf(skip)("agents' episode uploads through a bucket", () => {
  it("goes on from any byte on either web process, joins a file's pieces, checks every file, and hands them to the registered episode", async () => {
    const { repoId, source, body, id, size, big, sumsText } = await setUp("resume");
    // Cuts in the head, twice inside the long frame (the second after a whole piece), in the sums, near the end.
    const cuts = [300, big + 1_000_000, big + 8_700_000, sumsText + 20, size - 100, size];
    let at = 0;
    let pieces: Array<{ blob: string; bytes: number; header: number }> = [];
    for (const [i, cut] of cuts.entries()) {
      at = await patch(storeOn(i % 2), id, body, at, cut);
      expect(at).toBe(cut);
      expect((await storeOn((i + 1) % 2).getUpload(id)).offset).toBe(cut);
      if (cut === big + 8_700_000) pieces = (await db.edgeUpload.findUniqueOrThrow({ where: { id } })).pieces as typeof pieces;
    }
    // Each piece was stored behind a header naming the upload and its place.
    expect(pieces.length).toBeGreaterThanOrEqual(2);
    for (const p of pieces) expect(p.header).toBeGreaterThan(0);
    // The long frame came as pieces over three requests; only its joined blob is named now, and
    // the pieces are gone from the bucket.
    const row = await db.edgeUpload.findUniqueOrThrow({ where: { id } });
    expect(row.pieces).toEqual([]);
    for (const p of pieces) expect(await stores[0].has(p.blob)).toBe(false);
    expect(await storeOn(1).commit(id)).toEqual({ files: source.length });

    const arrived = await arrivedEpisodeUpload(db, { orgId: actor.orgId, repoId, episodeIndex: 0 });
    expect(Object.keys(arrived!.files).sort()).toEqual(source.map((f) => f.rel).sort());
    for (const f of source) {
      const content = fs.readFileSync(f.abs);
      expect(arrived!.files[f.rel]).toEqual({ sha256: sha(content), bytes: content.length });
      expect(await stores[1].has(sha(content))).toBe(true);
    }
    // Named, so the blob sweep keeps them while the upload waits for its registration.
    const shas = Object.values(arrived!.files).map((f) => f.sha256);
    expect((await namedBlobs(db, shas)).size).toBe(new Set(shas).size);
    // Nothing of it on any disk of the portal: the episode names the blobs.
    const result = await completeEpisode(db, { actor, input: { repoId, episodeIndex: 0, task: "pick", mode: "edge" }, blobs: stores[0] });
    expect(result.alreadyRegistered).toBe(false);
    const episode = await db.episode.findUniqueOrThrow({ where: { id: result.episodeId } });
    expect(episode.rawFiles).toEqual(arrived!.files);
    expect(episode.cameras).toEqual(["front"]);
    // The upload forgot its files, and still says it is done to an agent that asks again.
    expect(await arrivedEpisodeUpload(db, { orgId: actor.orgId, repoId, episodeIndex: 0 })).toBeNull();
    expect(await db.edgeUploadFile.count({ where: { uploadId: id } })).toBe(0);
    expect((await storeOn(0).getUpload(id)).offset).toBe(size);
    // Asking again registers nothing new.
    expect((await completeEpisode(db, { actor, input: { repoId, episodeIndex: 0, task: "pick", mode: "edge" }, blobs: stores[1] })).alreadyRegistered).toBe(true);
  }, 120_000);

  it("keeps what arrived before a connection broke, and what a web process killed mid-request had saved", async () => {
    const { body, id, size, big, sumsText } = await setUp("broken");
    // The connection breaks inside the long frame: what arrived of it is kept as a piece.
    await expect(patch(storeOn(0), id, body, 0, big + 2_000_000, { breakAfter: true })).rejects.toBeDefined();
    expect((await storeOn(1).getUpload(id)).offset).toBe(big + 2_000_000);

    // A request whose web process dies before the sums are in: it never ends, and the other
    // process sees what the first had put in the store and saved (the long frame, joined from its
    // two pieces, at least), never more than it received.
    const until = sumsText - 10;
    const zombie = storeOn(1).write(
      Readable.from(
        (async function* () {
          for (let at = big + 2_000_000; at < until; at += 65_536) yield body.subarray(at, Math.min(until, at + 65_536));
          await new Promise(() => {});
        })(),
      ),
      id,
      big + 2_000_000,
    );
    zombie.catch(() => {});
    let saved = 0;
    for (let i = 0; i < 400 && saved < big + 9_500_000; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      saved = (await storeOn(0).getUpload(id)).offset;
    }
    expect(saved).toBeGreaterThanOrEqual(big + 9_500_000);
    expect(saved).toBeLessThanOrEqual(until);
    // The other web process goes on from there.
    expect(await patch(storeOn(0), id, body, saved, size)).toBe(size);
    expect(await storeOn(0).commit(id)).toEqual({ files: 4 });
  }, 120_000);

  it("goes back to what its row holds when the row holds less than its offset counts", async () => {
    const { body, id, size, sumsText } = await setUp("short");
    // Saved at 300 bytes into the head; the row keeps only 200 of them.
    expect(await patch(storeOn(0), id, body, 0, 300)).toBe(300);
    await db.edgeUpload.update({ where: { id }, data: { head: Buffer.from(body.subarray(0, 200)) } });
    await expect(patch(storeOn(1), id, body, 300, 400)).rejects.toMatchObject({ status_code: 409 });
    expect((await storeOn(0).getUpload(id)).offset).toBe(200);
    // The same inside the sums.
    expect(await patch(storeOn(0), id, body, 200, sumsText + 30)).toBe(sumsText + 30);
    await db.edgeUpload.update({ where: { id }, data: { sums: Buffer.from(body.subarray(sumsText, sumsText + 10)) } });
    await expect(patch(storeOn(1), id, body, sumsText + 30, size)).rejects.toMatchObject({ status_code: 409 });
    expect((await storeOn(0).getUpload(id)).offset).toBe(sumsText + 10);
    expect(await patch(storeOn(1), id, body, sumsText + 10, size)).toBe(size);
    expect(await storeOn(1).commit(id)).toEqual({ files: 4 });
  }, 120_000);

  it("removes, as it resumes, the pieces its row named past its offset (put after one that never landed)", async () => {
    const { repoId, body, id, size, big } = await setUp("dropped");
    await expect(patch(storeOn(0), id, body, 0, big + 2_000_000, { breakAfter: true })).rejects.toBeDefined();
    const offset = (await storeOn(1).getUpload(id)).offset!;
    const [kept] = (await db.edgeUpload.findUniqueOrThrow({ where: { id } })).pieces as Array<{ fileIndex: number; start: number; bytes: number }>;
    // A request whose later piece landed and was saved while an earlier one was still on its way
    // when it died: its row names a piece past a gap.
    const beyond = { fileIndex: kept.fileIndex, start: kept.start + kept.bytes + 65_536, ...(await putPiece(stores[0], `edge-upload ${id} ${kept.fileIndex} x`, Readable.from([body.subarray(big + 2_100_000, big + 2_200_000)]))) };
    await db.edgeUpload.update({ where: { id }, data: { pieces: [kept, beyond] } });
    expect(await stores[1].has(beyond.blob)).toBe(true);
    expect(await patch(storeOn(1), id, body, offset, size)).toBe(size);
    expect(await stores[0].has(beyond.blob)).toBe(false);
    expect(await storeOn(0).commit(id)).toEqual({ files: 4 });
    const arrived = await arrivedEpisodeUpload(db, { orgId: actor.orgId, repoId, episodeIndex: 0 });
    expect(arrived?.files["images/front/episode-000000/frame-000000.png"].sha256).toBe(sha(body.subarray(big, big + 9_500_000)));
  }, 120_000);

  it("forgets uploads idle for a day (and their pieces), but not one complete and waiting for its commit", async () => {
    const [idle, complete, fresh] = [await setUp("idle"), await setUp("complete"), await setUp("fresh")];
    await patch(storeOn(0), idle.id, idle.body, 0, idle.big + 1_000_000);
    const idlePieces = (await db.edgeUpload.findUniqueOrThrow({ where: { id: idle.id } })).pieces as Array<{ blob: string }>;
    expect(idlePieces).toHaveLength(1);
    expect(await stores[1].has(idlePieces[0].blob)).toBe(true);
    expect(await patch(storeOn(0), complete.id, complete.body, 0, complete.size)).toBe(complete.size);
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    await db.$executeRaw`UPDATE "EdgeUpload" SET "updatedAt" = ${twoDaysAgo} WHERE "id" IN (${idle.id}, ${complete.id})`;
    const held: string[] = [];
    const removed = await storeOn(1).deleteExpired({ hold: async (id, work) => (held.push(id), work()) });
    expect(removed).toBeGreaterThanOrEqual(1);
    expect(held).toContain(idle.id);
    expect(await db.edgeUpload.findUnique({ where: { id: idle.id } })).toBeNull();
    expect(await stores[1].has(idlePieces[0].blob)).toBe(false);
    expect(await db.edgeUpload.findUnique({ where: { id: complete.id } })).not.toBeNull();
    expect(await db.edgeUpload.findUnique({ where: { id: fresh.id } })).not.toBeNull();
    // Its commit is still taken, and a committed one goes once idle.
    await storeOn(1).commit(complete.id);
    await db.$executeRaw`UPDATE "EdgeUpload" SET "updatedAt" = ${twoDaysAgo} WHERE "id" = ${complete.id}`;
    await storeOn(1).deleteExpired();
    expect(await db.edgeUpload.findUnique({ where: { id: complete.id } })).toBeNull();
  }, 120_000);

  it("sweeps, after a day, an upload a folder store had begun before the bucket", async () => {
    const { body, size, big, repoId } = await setUp("leftover");
    const tusDir = path.join(root, "leftover-tus");
    const raw = path.join(root, "leftover-raw");
    const folder = new EpisodeUploadStore({ dir: tusDir, rawDir: () => raw, maxBytes: 1e9, expireAfterMs: 86_400_000 });
    const id = crypto.randomBytes(16).toString("hex");
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    const metadata = { ...(await storeOn(0).getUpload((await db.edgeUpload.findFirstOrThrow({ where: { repoId } })).id)).metadata };
    await folder.create(new Upload({ id, size, offset: 0, metadata, creation_date: twoDaysAgo.toISOString() }));
    await folder.write(Readable.from([body.subarray(0, big + 1000)]), id, 0);
    const leftovers = () => [...fs.readdirSync(tusDir), ...fs.readdirSync(raw, { recursive: true }).map(String).filter((f) => f.includes(".part-"))];
    expect(leftovers().length).toBeGreaterThan(1);
    fs.utimesSync(path.join(tusDir, `${id}.json`), twoDaysAgo, twoDaysAgo);

    const server = createEdgeUploadServer({ db, tusDir, uploadRoot: raw, rawDir: () => raw, maxBytes: 1e9, minFreeBytes: 0, blobs: stores[0] });
    // Not an upload it can resume: through the bucket, it is not there.
    expect(await server.isOwnUpload(id, actor)).toBe(false);
    // The next upload begun sweeps it (this one is refused: it says nothing of itself).
    const refused = await server.handle(new Request(`http://portal${EDGE_UPLOADS_PATH}`, { method: "POST", headers: { "Tus-Resumable": "1.0.0", "Upload-Length": "10" } }), actor);
    expect(refused.status).toBe(400);
    await waitFor(async () => leftovers().length === 0, { timeoutMs: 10_000, what: "the folder upload swept" });
  });

  it("refuses a file that does not match its sum and forgets the upload, its pieces too", async () => {
    const { body, id, size, big } = await setUp("damaged");
    const damaged = Buffer.from(body);
    damaged[big + 5_000_000] ^= 0xff;
    expect(await patch(storeOn(0), id, damaged, 0, big + 9_000_000)).toBe(big + 9_000_000);
    const pieces = (await db.edgeUpload.findUniqueOrThrow({ where: { id } })).pieces as Array<{ blob: string }>;
    expect(pieces.length).toBeGreaterThanOrEqual(2);
    await expect(patch(storeOn(1), id, damaged, big + 9_000_000, size)).rejects.toMatchObject({ status_code: 400, body: expect.stringMatching(/frame-000000\.png" arrived damaged/) });
    expect(await db.edgeUpload.findUnique({ where: { id } })).toBeNull();
    for (const p of pieces) expect(await stores[0].has(p.blob)).toBe(false);
  }, 120_000);

  it("receives a file again from its start when one of its pieces is no longer in the bucket", async () => {
    const { source, body, id, size, big } = await setUp("lost-piece");
    expect(await patch(storeOn(0), id, body, 0, big + 9_000_000)).toBe(big + 9_000_000);
    const [lost] = (await db.edgeUpload.findUniqueOrThrow({ where: { id } })).pieces as Array<{ blob: string }>;
    await stores[0].delete(lost.blob);
    await expect(patch(storeOn(1), id, body, big + 9_000_000, size)).rejects.toBeDefined();
    // The row forgot the file's pieces and went back to where the file starts.
    const row = await db.edgeUpload.findUniqueOrThrow({ where: { id } });
    expect(row.pieces).toEqual([]);
    expect((await storeOn(0).getUpload(id)).offset).toBe(big);
    expect(await patch(storeOn(0), id, body, big, size)).toBe(size);
    expect(await storeOn(1).commit(id)).toEqual({ files: source.length });
  }, 120_000);
});
