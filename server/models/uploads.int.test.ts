import crypto from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { createApiToken } from "../auth/tokens.service";
import { blobStore } from "../storage/blobs";
import { POST as uploadVersion } from "../../app/api/models/[modelId]/versions/route";
import { POST as startUpload } from "../../app/api/models/[modelId]/uploads/route";
import { DELETE as cancelUpload, GET as uploadStatus, PUT as putChunk } from "../../app/api/models/[modelId]/uploads/[uploadId]/route";
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
async function start(total: number, query = "", headers = auth) {
  return startUpload(new Request(`${base()}${query}`, { method: "POST", headers: { ...headers, "upload-length": String(total) } }), { params: Promise.resolve({ modelId }) });
}
const piece = (uploadId: string, content: Buffer, start: number, end: number, headers = auth) =>
  putChunk(new Request(`${base()}/${uploadId}`, { method: "PUT", headers: { ...headers, "content-range": `bytes ${start}-${end}/${content.length}` }, body: new Uint8Array(content.subarray(start, end + 1)) }), {
    params: Promise.resolve({ modelId, uploadId }),
  });
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

    const last = await piece(uploadId, content, 70_000, 99_999);
    expect(last.status).toBe(201);
    const version = await last.json();
    expect(version).toMatchObject({ received: 100_000 });
    expect(await blobStore().has(sha(content))).toBe(true);
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
  });

  it("cancels an upload, and keeps other organisations out", async () => {
    const { uploadId } = await (await start(10)).json();
    expect((await start(10, "", otherAuth)).status).toBe(404);
    const cancelAs = (headers: Record<string, string>) => cancelUpload(new Request(`${base()}/${uploadId}`, { method: "DELETE", headers }), { params: Promise.resolve({ modelId, uploadId }) });
    expect((await cancelAs(otherAuth)).status).toBe(404);
    expect((await cancelAs(auth)).status).toBe(204);
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

    const viewer = await createApiToken(db, { actor: await addMember(db, orgId, "viewer"), input: { name: "reader", scopes: ["read"] } });
    expect((await post(id, content, { authorization: `Bearer ${viewer.token}` })).status).toBe(403);
    expect((await post(id, content, {})).status).toBe(401);
  });
});
