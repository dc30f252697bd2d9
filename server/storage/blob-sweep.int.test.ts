import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, PutObjectCommand, UploadPartCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { swiftBucket, swiftSkipReason } from "../../tests/helpers/s3-swift";
import type { BlobStore, ListedBlob } from "./blob-store";
import { sweepBlobs, type SweptItem } from "./blob-sweep.service";
import { createLocalBlobStore } from "./local-blob-store";

// The sweep on both stores against real rows: blobs no row names go (a deleted model's file, a
// finished job's input), blobs rows name stay (a version's file, a checkpoint's files, a queued
// job's input, an upload's pieces), and so does anything written or kept within the grace window — including a blob
// a writer finds already stored while the sweep is deciding about it. Leftovers of crashed
// writers go once old enough. A dry run lists the same things, with sizes, and removes nothing.

// Long enough that the sweeps right after a write finish inside it on a busy machine.
const GRACE_MS = 4000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bytesOf = (label: string) => Buffer.from(`${label} ${crypto.randomUUID()}`);

interface Rig {
  store: BlobStore;
  /** Leaves what a killed writer would: returns how many leftovers it made. */
  crash(): Promise<number>;
  leftoverCount(): Promise<number>;
}

async function put(store: BlobStore, b: Buffer) {
  return store.put([b] as unknown as AsyncIterable<Uint8Array>);
}

function sweepSuite(name: string, skip: string | null, makeRig: () => Promise<Rig>) {
  describe.skipIf(!!skip)(`The blob sweep on the ${name}${skip ? ` (skipped: ${skip})` : ""}`, { timeout: 90_000 }, () => {
    let rig: Rig;
    beforeAll(async () => {
      if (!skip) rig = await makeRig();
    }, 300_000);

    it("removes blobs no row names and old leftovers, after a dry run that lists them with sizes; keeps named and recent blobs", async () => {
      const db = testDb();
      const { orgId, actor } = await createOrgWithMember(db);
      const { store } = rig;
      const [onnx, ckptA, ckptB, orphan, deletedModel, vector, finishedVector, piece, legacyPiece] = await Promise.all(
        ["onnx", "ckpt-a", "ckpt-b", "orphan", "deleted", "vector", "finished-vector", "piece", "legacy-piece"].map((l) => put(store, bytesOf(l))),
      );
      const model = await db.model.create({ data: { orgId, name: `m-${crypto.randomUUID()}` } });
      await db.modelVersion.create({ data: { orgId, modelId: model.id, number: 1, source: { kind: "upload" }, sha256: onnx.sha256, bytes: onnx.bytes } });
      await db.modelVersion.create({ data: { orgId, modelId: model.id, number: 2, source: { kind: "upload" }, kind: "lerobot-checkpoint", files: [ckptA, ckptB].map((b, i) => ({ path: `f${i}`, ...b })) } });
      const gone = await db.model.create({ data: { orgId, name: `gone-${crypto.randomUUID()}` } });
      await db.modelVersion.create({ data: { orgId, modelId: gone.id, number: 1, source: { kind: "upload" }, sha256: deletedModel.sha256, bytes: deletedModel.bytes } });
      await db.model.delete({ where: { id: gone.id } });
      await db.job.create({ data: { orgId, kind: "models.validate", status: "queued", payload: { versionId: crypto.randomUUID(), testVectorSha256: vector.sha256 } } });
      await db.job.create({ data: { orgId, kind: "models.validate", status: "succeeded", payload: { versionId: crypto.randomUUID(), testVectorSha256: finishedVector.sha256 } } });
      // A model upload in progress: a piece behind a header (named as `blob`) and one recorded before headers (as `sha256`).
      const pieces = [{ start: 0, bytes: 10, sha256: legacyPiece.sha256 }, { start: 10, bytes: piece.bytes - 5, header: 5, blob: piece.sha256 }];
      await db.modelUpload.create({ data: { id: crypto.randomUUID(), orgId, modelId: model.id, userId: actor.userId, total: BigInt(1000), dims: {}, pieces } });
      const leftovers = await rig.crash();
      await sleep(GRACE_MS + 1200);
      const recent = await put(store, bytesOf("recent"));

      const seen: SweptItem[] = [];
      const dry = await sweepBlobs(db, { blobs: store, graceMs: GRACE_MS, leftoverAgeMs: GRACE_MS, dryRun: true, onItem: (i) => seen.push(i) });
      const wouldGo = [orphan, deletedModel, finishedVector];
      expect(seen.filter((i) => i.kind === "blob").map((i) => (i.kind === "blob" ? i.sha256 : "")).sort()).toEqual(wouldGo.map((b) => b.sha256).sort());
      expect(seen.filter((i) => i.kind === "blob").every((i) => i.bytes > 0)).toBe(true);
      expect(dry).toMatchObject({ dryRun: true, blobs: { count: 3, bytes: wouldGo.reduce((n, b) => n + b.bytes, 0) }, leftovers: { count: leftovers } });
      expect(dry.leftovers.bytes).toBeGreaterThan(0);
      for (const b of wouldGo) expect(await store.has(b.sha256)).toBe(true);
      expect(await rig.leftoverCount()).toBe(leftovers);

      const real = await sweepBlobs(db, { blobs: store, graceMs: GRACE_MS, leftoverAgeMs: GRACE_MS });
      expect(real).toMatchObject({ dryRun: false, blobs: dry.blobs, leftovers: dry.leftovers });
      for (const b of wouldGo) expect(await store.has(b.sha256)).toBe(false);
      for (const b of [onnx, ckptA, ckptB, vector, recent, piece, legacyPiece]) expect(await store.has(b.sha256)).toBe(true);
      expect(await rig.leftoverCount()).toBe(0);
    });

    it("never removes a blob a writer found already stored while the sweep was deciding, though no row names it yet", async () => {
      const db = testDb();
      const { orgId } = await createOrgWithMember(db);
      const { store } = rig;
      const content = bytesOf("re-uploaded");
      const old = await put(store, content);
      const other = await put(store, bytesOf("really unwanted"));
      await sleep(GRACE_MS + 1200);
      // The sweep lists the blob as old and unnamed; then, before it removes anything, a writer
      // uploads the same content (finding it stored) and only afterwards inserts its row.
      let isWriterDone = false;
      const racing: BlobStore = {
        ...store,
        list: async function* (): AsyncIterable<ListedBlob> {
          const listed: ListedBlob[] = [];
          for await (const b of store.list()) listed.push(b);
          expect(listed.find((b) => b.sha256 === old.sha256)!.modifiedAt.getTime()).toBeLessThan(Date.now() - GRACE_MS);
          yield* listed;
          expect(await put(store, content)).toEqual(old);
          isWriterDone = true;
        },
      };
      const report = await sweepBlobs(db, { blobs: racing, graceMs: GRACE_MS, leftoverAgeMs: 3_600_000 });
      expect(isWriterDone).toBe(true);
      expect(await store.has(other.sha256)).toBe(false);
      expect(await store.has(old.sha256)).toBe(true);
      const model = await db.model.create({ data: { orgId, name: `m-${crypto.randomUUID()}` } });
      await db.modelVersion.create({ data: { orgId, modelId: model.id, number: 1, source: { kind: "upload" }, sha256: old.sha256, bytes: old.bytes } });
      expect(report.blobs.count).toBeGreaterThanOrEqual(1);
      // keep() does for a writer that only checks (a checkpoint file already at home) what put does.
      await sleep(GRACE_MS + 1200);
      const before = new Date(Date.now() - GRACE_MS);
      const checked = await put(store, bytesOf("checked only"));
      await sleep(GRACE_MS + 1200);
      expect(await store.keep(checked.sha256)).toBe(true);
      expect(await store.deleteIfIdleSince(checked.sha256, new Date(Date.now() - GRACE_MS))).toBe(false);
      expect(await store.deleteIfIdleSince(checked.sha256, before)).toBe(false);
      expect(await store.has(checked.sha256)).toBe(true);
      expect(await store.keep("e".repeat(64))).toBe(false);
    });
  });
}

sweepSuite("folder store", null, async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-sweep-"));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  const tmp = path.join(root, "tmp");
  return {
    store: createLocalBlobStore({ root }),
    async crash() {
      fs.mkdirSync(tmp, { recursive: true });
      fs.writeFileSync(path.join(tmp, `${crypto.randomUUID()}.part`), Buffer.alloc(1000, 1));
      fs.writeFileSync(path.join(tmp, `${crypto.randomUUID()}.part`), Buffer.alloc(10, 2));
      return 2;
    },
    leftoverCount: async () => (fs.existsSync(tmp) ? fs.readdirSync(tmp).length : 0),
  };
});

const swiftSkip = swiftSkipReason();
sweepSuite("S3 store", swiftSkip, async () => {
  const bucket = "gantry-sweep";
  const prefix = "swept/";
  const swift = await swiftBucket(bucket, prefix);
  const { raw } = swift;
  afterAll(() => swift.close());
  const store = swift.store({ db: testDb, refreshAfterMs: 0 });
  const uploads = async () => (await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}tmp/` }))).Uploads?.length ?? 0;
  const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
  const tmpObjects = async () => (await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}tmp/` }))).KeyCount ?? 0;
  return {
    store,
    async crash() {
      await raw.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}tmp/${crypto.randomUUID()}`, Body: Buffer.alloc(1000, 1) }));
      const Key = `${prefix}tmp/${crypto.randomUUID()}`;
      const { UploadId } = await raw.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }));
      await raw.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: 1, Body: Buffer.alloc(2000, 3), ContentLength: 2000 }));
      return 2;
    },
    leftoverCount: async () => (await uploads()) + (await tmpObjects()),
  };
});
