import crypto from "node:crypto";
import { Readable } from "node:stream";
import { beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { createApiToken } from "../auth/tokens.service";
import { blobStore } from "../storage/blobs";
import { POST as uploadVersion } from "../../app/api/models/[modelId]/versions/route";
import { POST as startUpload } from "../../app/api/models/[modelId]/uploads/route";
import { DELETE as cancelUpload, GET as uploadStatus, PUT as putChunk } from "../../app/api/models/[modelId]/uploads/[uploadId]/route";
import { buildMlp } from "../../tests/helpers/onnx-models";
import { namedBlobs } from "../storage/blob-refs";
import { createModel } from "./registry.service";

const db = testDb();
const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
let auth: Record<string, string>;
let otherAuth: Record<string, string>;
let modelId: string;
let orgId: string;

beforeAll(async () => {
  const org = await createOrgWithMember(db, "operator");
  orgId = org.orgId;
  auth = { authorization: `Bearer ${(await createApiToken(db, { actor: org.actor, input: { name: "uploader", scopes: ["write"] } })).token}` };
  const other = await createOrgWithMember(db, "operator");
  otherAuth = { authorization: `Bearer ${(await createApiToken(db, { actor: await addMember(db, other.orgId, "operator"), input: { name: "other", scopes: ["write"] } })).token}` };
  modelId = (await createModel(db, { actor: org.actor, input: { name: `resumable ${crypto.randomUUID().slice(0, 8)}`, description: "" } })).id;
});

const base = (id = modelId) => `http://localhost/api/models/${id}/uploads`;
async function start(total: number, query = "", headers = auth, testVector?: unknown) {
  const body = testVector === undefined ? {} : { body: JSON.stringify({ testVector }), headers: { ...headers, "upload-length": String(total), "content-type": "application/json" } };
  return startUpload(new Request(`${base()}${query}`, { method: "POST", headers: { ...headers, "upload-length": String(total) }, ...body }), { params: Promise.resolve({ modelId }) });
}
/** The vector blob a version's validate job was given, read back. */
async function vectorOf(versionId: string): Promise<unknown> {
  const version = await db.modelVersion.findUniqueOrThrow({ where: { id: versionId } });
  const { testVectorSha256 } = (await db.job.findUniqueOrThrow({ where: { id: version.jobId! } })).payload as { testVectorSha256?: string };
  if (!testVectorSha256) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of await blobStore().get(testVectorSha256)) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}
const piece = (uploadId: string, content: Buffer, start: number, end: number, headers = auth) =>
  putChunk(new Request(`${base()}/${uploadId}`, { method: "PUT", headers: { ...headers, "content-range": `bytes ${start}-${end}/${content.length}` }, body: new Uint8Array(content.subarray(start, end + 1)) }), {
    params: Promise.resolve({ modelId, uploadId }),
  });
/** Blobs written since `since` that are pieces of this upload (their header names it). */
async function piecesNaming(uploadId: string, since: Date): Promise<string[]> {
  const found: string[] = [];
  for await (const blob of blobStore().list()) {
    if (blob.modifiedAt < since || blob.bytes === 0) continue;
    const head: Buffer[] = [];
    for await (const chunk of await blobStore().get(blob.sha256, { start: 0, end: Math.min(blob.bytes, 200) - 1 })) head.push(chunk as Buffer);
    if (Buffer.concat(head).toString("latin1").startsWith(`gantry upload piece: model-upload ${uploadId} `)) found.push(blob.sha256);
  }
  return found;
}
const status = (uploadId: string, headers = auth) => uploadStatus(new Request(`${base()}/${uploadId}`, { headers }), { params: Promise.resolve({ modelId, uploadId }) });

describe("resumable model uploads", () => {
  it("takes a file in pieces, resumes from what arrived, and turns the last piece into a version", async () => {
    const content = crypto.randomBytes(100_000);
    const started = await start(content.length, `?sha256=${sha(content)}&filename=big.onnx`);
    expect(started.status).toBe(201);
    const { uploadId, url } = await started.json();
    expect(url).toBe(`/api/models/${modelId}/uploads/${uploadId}`);

    const first = await piece(uploadId, content, 0, 39_999);
    expect(first.status).toBe(200);
    expect(first.headers.get("range")).toBe("bytes=0-39999");
    expect(await (await status(uploadId)).json()).toEqual({ uploadId, received: 40_000, total: 100_000 });

    const gap = await piece(uploadId, content, 50_000, 59_999);
    expect(gap.status).toBe(409);
    expect((await gap.json()).error.message).toMatch(/starting at byte 40000/);
    // Resending a piece that partly arrived already is fine.
    expect((await piece(uploadId, content, 30_000, 69_999)).status).toBe(200);
    expect((await status(uploadId, otherAuth)).status).toBe(404);

    const pieces = (await db.modelUpload.findUniqueOrThrow({ where: { id: uploadId } })).pieces as Array<{ blob: string }>;
    expect(pieces).toHaveLength(2);
    for (const p of pieces) expect(await blobStore().has(p.blob)).toBe(true);
    const last = await piece(uploadId, content, 70_000, 99_999);
    expect(last.status).toBe(201);
    const version = await last.json();
    expect(version).toMatchObject({ received: 100_000 });
    expect(await blobStore().has(sha(content))).toBe(true);
    // Joined: the pieces are removed at once, not left for the sweep (the file is stored once).
    for (const p of pieces) expect(await blobStore().has(p.blob)).toBe(false);
    expect(await db.modelVersion.findUniqueOrThrow({ where: { id: version.versionId } })).toMatchObject({ sha256: sha(content), source: { kind: "upload", filename: "big.onnx" } });
    expect((await status(uploadId)).status).toBe(404);
  });

  it("refuses a file over MODEL_MAX_UPLOAD_BYTES with 413, a piece shorter than its range, and a damaged whole", async () => {
    const tooBig = await start(10 * 1024 ** 4);
    expect(tooBig.status).toBe(413);
    expect((await tooBig.json()).error.message).toMatch(/MODEL_MAX_UPLOAD_BYTES/);

    const content = crypto.randomBytes(1000);
    const { uploadId } = await (await start(content.length, `?sha256=${"2".repeat(64)}`)).json();
    const short = await putChunk(new Request(`${base()}/${uploadId}`, { method: "PUT", headers: { ...auth, "content-range": "bytes 0-999/1000" }, body: new Uint8Array(content.subarray(0, 10)) }), { params: Promise.resolve({ modelId, uploadId }) });
    expect(short.status).toBe(400);
    expect((await (await status(uploadId)).json()).received).toBe(0);
    const damaged = await piece(uploadId, content, 0, 999);
    expect(damaged.status).toBe(400);
    expect((await damaged.json()).error.message).toMatch(/damaged/);
    expect((await status(uploadId)).status).toBe(404);

    // A Git LFS pointer sent in two pieces: refused once it has all arrived, and the upload is gone
    // (sending it again cannot mend it).
    const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${"b".repeat(64)}\nsize 91234567\n`);
    const lfs = (await (await start(pointer.length)).json()).uploadId;
    expect((await piece(lfs, pointer, 0, 19)).status).toBe(200);
    const refused = await piece(lfs, pointer, 20, pointer.length - 1);
    expect(refused.status).toBe(400);
    expect((await refused.json()).error.message).toMatch(/^This is a Git LFS pointer.*Nothing was stored\.$/);
    expect((await status(lfs)).status).toBe(404);
  });

  it("takes a test vector at the start, checks its form then and its fit once the model has arrived", async () => {
    const mlp = buildMlp(`batch_${crypto.randomUUID().slice(0, 8)}`);
    const testVector = { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }] };
    const { uploadId } = await (await start(mlp.length, "", auth, testVector)).json();
    expect((await piece(uploadId, mlp, 0, 99)).status).toBe(200);
    const last = await piece(uploadId, mlp, 100, mlp.length - 1);
    expect(last.status).toBe(201);
    expect(await vectorOf((await last.json()).versionId)).toEqual(testVector);

    const unreadable = await start(mlp.length, "", auth, { inputs: { x: [[1, 2], [3]] } });
    expect(unreadable.status).toBe(400);
    expect((await unreadable.json()).error.message).toBe('The test vector cannot be read: Input "x" is ragged: rows at one depth differ in length. No upload was started');

    const other = buildMlp(`batch_${crypto.randomUUID().slice(0, 8)}`);
    const misfit = await (await start(other.length, "", auth, { inputs: { x: [[1, 2, 3]] } })).json();
    const refused = await piece(misfit.uploadId, other, 0, other.length - 1);
    expect(refused.status).toBe(400);
    expect((await refused.json()).error.message).toMatch(/^The test vector does not fit the uploaded model: Input "x" has shape \[batch_\w+, 4\] in the model, so axis 1 must be 4, but the test vector gives 3/);
    // No version was made; nothing names the model's bytes now (the sweep takes them), and the upload is gone.
    expect(await db.modelVersion.count({ where: { sha256: sha(other) } })).toBe(0);
    expect(await namedBlobs(db, [sha(other)])).toEqual(new Set());
    expect((await status(misfit.uploadId)).status).toBe(404);
  });

  it("writes one piece at a time, whichever web process each reaches: another is refused with 409 until the first ends", async () => {
    const content = crypto.randomBytes(50_000);
    const { uploadId } = await (await start(content.length)).json();
    // A piece whose bytes stop coming: it holds the session (its lock is in Postgres, so a second
    // web process would be refused the same way).
    let sendRest!: () => void;
    let pulls = 0;
    // Pulled only as it is read (no read-ahead): its first bytes read means the piece holds the lock.
    const stalled = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (++pulls === 1) return controller.enqueue(new Uint8Array(content.subarray(0, 10_000)));
          await new Promise<void>((resolve) => (sendRest = resolve));
          controller.enqueue(new Uint8Array(content.subarray(10_000, 20_000)));
          controller.close();
        },
      },
      { highWaterMark: 0 },
    );
    const first = putChunk(
      new Request(`${base()}/${uploadId}`, { method: "PUT", headers: { ...auth, "content-range": `bytes 0-19999/${content.length}` }, body: stalled, duplex: "half" } as RequestInit),
      { params: Promise.resolve({ modelId, uploadId }) },
    );
    await waitFor(async () => pulls >= 2, { what: "the first piece's first bytes" });
    // Nothing of a piece counts until all of it has arrived.
    expect((await (await status(uploadId)).json()).received).toBe(0);
    const refused = await piece(uploadId, content, 0, 19_999);
    expect(refused.status).toBe(409);
    expect((await refused.json()).error.message).toMatch(/Another piece of this upload is being written/);
    sendRest();
    expect((await first).status).toBe(200);
    const last = await piece(uploadId, content, 20_000, content.length - 1);
    expect(last.status, await last.clone().text()).toBe(201);
  });

  it("cancels an upload, removing its pieces, and keeps other organisations out", async () => {
    const content = crypto.randomBytes(10);
    const { uploadId } = await (await start(10)).json();
    expect((await piece(uploadId, content, 0, 4)).status).toBe(200);
    const [stored] = (await db.modelUpload.findUniqueOrThrow({ where: { id: uploadId } })).pieces as Array<{ blob: string }>;
    expect((await start(10, "", otherAuth)).status).toBe(404);
    const cancelAs = (headers: Record<string, string>) => cancelUpload(new Request(`${base()}/${uploadId}`, { method: "DELETE", headers }), { params: Promise.resolve({ modelId, uploadId }) });
    expect((await cancelAs(otherAuth)).status).toBe(404);
    expect(await blobStore().has(stored.blob)).toBe(true);
    expect((await cancelAs(auth)).status).toBe(204);
    expect((await status(uploadId)).status).toBe(404);
    expect(await blobStore().has(stored.blob)).toBe(false);
  });

  it("cancels an upload while a piece is being written: the piece stops and says so, and nothing of it is left", async () => {
    const content = crypto.randomBytes(30_000);
    const { uploadId } = await (await start(content.length)).json();
    expect((await piece(uploadId, content, 0, 9_999)).status).toBe(200);
    const [first] = (await db.modelUpload.findUniqueOrThrow({ where: { id: uploadId } })).pieces as Array<{ blob: string }>;
    let pulls = 0;
    // Its first bytes are sent, the rest never come: it holds the upload's lock until asked to let go.
    const stalled = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (++pulls === 1) return controller.enqueue(new Uint8Array(content.subarray(10_000, 15_000)));
          await new Promise<void>(() => {});
        },
      },
      { highWaterMark: 0 },
    );
    const since = new Date(Date.now() - 1000);
    const writing = putChunk(
      new Request(`${base()}/${uploadId}`, { method: "PUT", headers: { ...auth, "content-range": `bytes 10000-29999/${content.length}` }, body: stalled, duplex: "half" } as RequestInit),
      { params: Promise.resolve({ modelId, uploadId }) },
    );
    await waitFor(async () => pulls >= 2, { what: "the second piece's first bytes" });
    const cancelled = await cancelUpload(new Request(`${base()}/${uploadId}`, { method: "DELETE", headers: auth }), { params: Promise.resolve({ modelId, uploadId }) });
    expect(cancelled.status).toBe(204);
    const stopped = await writing;
    expect(stopped.status).toBe(409);
    expect((await stopped.json()).error.message).toMatch(/^This piece was stopped before it was all written: the upload was cancelled/);
    expect((await status(uploadId)).status).toBe(404);
    expect(await blobStore().has(first.blob)).toBe(false);
    // The stopped piece's bytes were not kept, as a blob or as a writer's leftover.
    expect(await piecesNaming(uploadId, since)).toEqual([]);
    const leftovers: string[] = [];
    for await (const leftover of blobStore().listLeftovers(new Date(Date.now() + 60_000))) if (leftover.modifiedAt >= since) leftovers.push(leftover.name);
    expect(leftovers).toEqual([]);
  });

  it("joins a piece recorded without a header (an upload begun before headers) and leaves that blob to the sweep", async () => {
    const content = crypto.randomBytes(30_000);
    const { uploadId } = await (await start(content.length)).json();
    // The first piece as uploads recorded it before: a blob of the piece's bytes alone, which
    // another writer may hold too.
    const legacy = await blobStore().put(Readable.from([content.subarray(0, 10_000)]));
    await db.modelUpload.update({ where: { id: uploadId }, data: { pieces: [{ start: 0, bytes: 10_000, sha256: legacy.sha256 }] } });
    expect(await (await status(uploadId)).json()).toMatchObject({ received: 10_000 });
    expect((await piece(uploadId, content, 10_000, 19_999)).status).toBe(200);
    const [, headed] = (await db.modelUpload.findUniqueOrThrow({ where: { id: uploadId } })).pieces as Array<{ blob: string }>;
    const last = await piece(uploadId, content, 20_000, content.length - 1);
    expect(last.status).toBe(201);
    expect((await db.modelVersion.findUniqueOrThrow({ where: { id: (await last.json()).versionId } })).sha256).toBe(sha(content));
    expect(await blobStore().has(legacy.sha256)).toBe(true);
    expect(await blobStore().has(headed.blob)).toBe(false);
  });

  it("starts over, saying why, when a piece is no longer in the store at the join", async () => {
    const content = crypto.randomBytes(20_000);
    const { uploadId } = await (await start(content.length)).json();
    expect((await piece(uploadId, content, 0, 9_999)).status).toBe(200);
    const [lost] = (await db.modelUpload.findUniqueOrThrow({ where: { id: uploadId } })).pieces as Array<{ blob: string }>;
    await blobStore().delete(lost.blob);
    const last = await piece(uploadId, content, 10_000, content.length - 1);
    expect(last.status).toBe(409);
    expect((await last.json()).error.message).toMatch(/no longer in the blob store .*start the upload again/);
    expect((await status(uploadId)).status).toBe(404);
  });
});

describe("one-shot model upload", () => {
  async function post(modelId: string, body: BodyInit, headers: Record<string, string>, query = "") {
    return uploadVersion(new Request(`http://localhost/api/models/${modelId}/versions${query}`, { method: "POST", body, headers, duplex: "half" } as RequestInit), { params: Promise.resolve({ modelId }) });
  }

  it("streams the body into the blob store and answers 201, 400 for a bad checksum, 413 over the limit", async () => {
    const { token } = await createApiToken(db, { actor: await addMember(db, orgId, "operator"), input: { name: "uploader", scopes: ["write"] } });
    const auth = { authorization: `Bearer ${token}` };
    const id = modelId;
    const content = crypto.randomBytes(70_000);
    const stream = new ReadableStream({ start(c) { c.enqueue(content.subarray(0, 30_000)); c.enqueue(content.subarray(30_000)); c.close(); } });
    const ok = await post(id, stream, auth, `?sha256=${sha(content)}&filename=policy.onnx&dims=${encodeURIComponent('{"batch":1}')}`);
    expect(ok.status).toBe(201);
    const body = await ok.json();
    expect(body.number).toBeGreaterThanOrEqual(1);
    expect(await blobStore().has(sha(content))).toBe(true);
    expect((await db.modelVersion.findUniqueOrThrow({ where: { id: body.versionId } })).source).toEqual({ kind: "upload", filename: "policy.onnx" });

    const damaged = await post(id, content, auth, `?sha256=${"1".repeat(64)}`);
    expect(damaged.status).toBe(400);
    expect((await damaged.json()).error.message).toMatch(/damaged/);

    const tooBig = await post(id, content, { ...auth, "content-length": String(10 * 1024 ** 4) });
    expect(tooBig.status).toBe(413);
    expect((await tooBig.json()).error.message).toMatch(/MODEL_MAX_UPLOAD_BYTES/);

    // A test vector first, Test-Vector-Length bytes of JSON, then the model.
    const mlp = buildMlp(`batch_${crypto.randomUUID().slice(0, 8)}`);
    const vector = Buffer.from(JSON.stringify({ inputs: { x: { shape: [2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8] } } }));
    const both = Buffer.concat([vector, mlp]);
    const split = new ReadableStream({ start(c) { c.enqueue(both.subarray(0, 10)); c.enqueue(both.subarray(10, vector.length + 7)); c.enqueue(both.subarray(vector.length + 7)); c.close(); } });
    const withVector = await post(id, split, { ...auth, "test-vector-length": String(vector.length) }, `?sha256=${sha(mlp)}`);
    expect(withVector.status).toBe(201);
    const added = await withVector.json();
    expect((await db.modelVersion.findUniqueOrThrow({ where: { id: added.versionId } })).sha256).toBe(sha(mlp));
    expect(await vectorOf(added.versionId)).toEqual(JSON.parse(vector.toString()));

    const other = buildMlp(`batch_${crypto.randomUUID().slice(0, 8)}`);
    const misfit = Buffer.from(JSON.stringify({ inputs: { x: [[1, 2, 3, 4]], mask: [1] } }));
    const refused = await post(id, new Uint8Array(Buffer.concat([misfit, other])), { ...auth, "test-vector-length": String(misfit.length) });
    expect(refused.status).toBe(400);
    expect((await refused.json()).error.message).toMatch(/^The test vector does not fit the uploaded model: Input "mask" is not one of the model's inputs \("x"\)\. Nothing was stored/);
    expect(await blobStore().has(sha(other))).toBe(false);
    const notJson = await post(id, new Uint8Array(Buffer.concat([Buffer.from("{nope"), other])), { ...auth, "test-vector-length": "5" });
    expect(notJson.status).toBe(400);
    expect((await notJson.json()).error.message).toMatch(/^The first 5 bytes of the body \(Test-Vector-Length\) are not JSON/);
    expect((await post(id, new Uint8Array(other), { ...auth, "test-vector-length": "lots" })).status).toBe(400);

    const viewer = await createApiToken(db, { actor: await addMember(db, orgId, "viewer"), input: { name: "reader", scopes: ["read"] } });
    expect((await post(id, content, { authorization: `Bearer ${viewer.token}` })).status).toBe(403);
    expect((await post(id, content, {})).status).toBe(401);
  });
});
