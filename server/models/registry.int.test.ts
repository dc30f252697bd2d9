import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createDb, type Db } from "../db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import type { OrgActor } from "../auth/roles";
import { createProgressReporter } from "../jobs/progress";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { createModelInput } from "./models.schemas";
import {
  addVersionFromUpload,
  addVersionFromUrl,
  createModel,
  deleteModel,
  getModel,
  listModels,
  revalidateVersion,
  updateModel,
  UploadTooLargeError,
} from "./registry.service";
import { validateModelVersion, type ValidateOnnxFile } from "./version-validation.service";

// A database of its own: workers other test files start would take these jobs.
let database: TestDatabase;
let db: Db;
const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-registry-"));
const blobs = createLocalBlobStore({ root });
const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
const unique = () => crypto.randomUUID().slice(0, 8);

let operator: OrgActor;
let other: OrgActor;
beforeAll(async () => {
  database = await createTestDatabase("registry");
  db = createDb(database.url, 3);
  operator = (await createOrgWithMember(db, "operator")).actor;
  other = (await createOrgWithMember(db, "operator")).actor;
});
afterAll(async () => {
  fs.rmSync(root, { recursive: true, force: true });
  await db.$disconnect();
  await database.drop();
});

const upload = (modelId: string, content: Buffer, extra: { sha256?: string; maxBytes?: number } = {}) =>
  addVersionFromUpload(db, { actor: operator, modelId, body: Readable.from([content.subarray(0, 10), content.subarray(10)]), blobs, maxBytes: extra.maxBytes ?? 1_000_000, sha256: extra.sha256, dims: { batch: 2 } });

describe("models", () => {
  it("validates names", () => {
    expect(createModelInput.parse({ name: "  ACT so100 v1.2_b-x " }).name).toBe("ACT so100 v1.2_b-x");
    for (const bad of ["", "x".repeat(81), "a/b", "émoji 🤖", "<script>"]) expect(createModelInput.safeParse({ name: bad }).success, bad).toBe(false);
  });

  it("creates, lists, renames and deletes, with names unique per organisation", async () => {
    const name = `ACT ${unique()}`;
    const { id } = await createModel(db, { actor: operator, input: { name, description: "pick and place" } });
    await expect(createModel(db, { actor: operator, input: { name, description: "" } })).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringContaining(name) });
    await createModel(db, { actor: other, input: { name, description: "" } }); // another org may reuse it
    expect((await listModels(db, { orgId: operator.orgId })).find((m) => m.id === id)).toMatchObject({ name, versionCount: 0, latestVersion: null });
    await updateModel(db, { actor: operator, input: { modelId: id, name: `${name} renamed`, description: "new" } });
    expect(await getModel(db, { orgId: operator.orgId, modelId: id })).toMatchObject({ name: `${name} renamed`, description: "new", versions: [] });
    await expect(getModel(db, { orgId: other.orgId, modelId: id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(deleteModel(db, { actor: other, modelId: id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await deleteModel(db, { actor: operator, modelId: id });
    await expect(getModel(db, { orgId: operator.orgId, modelId: id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    const audit = await db.auditEvent.findMany({ where: { orgId: operator.orgId, target: id }, orderBy: { id: "asc" } });
    expect(audit.map((a) => a.action)).toEqual(["model.create", "model.update", "model.delete"]);
  });
});

describe("versions", () => {
  it("numbers uploads 1, 2, … and queues validation in the same transaction", async () => {
    const { id } = await createModel(db, { actor: operator, input: { name: `up ${unique()}`, description: "" } });
    const a = crypto.randomBytes(2000);
    const first = await upload(id, a, { sha256: sha(a) });
    const second = await upload(id, crypto.randomBytes(3000));
    const third = await addVersionFromUrl(db, { actor: operator, input: { modelId: id, url: "https://example.test/model.onnx", dims: {} } });
    expect([first.number, second.number, third.number]).toEqual([1, 2, 3]);
    expect(await blobs.has(sha(a))).toBe(true);
    const job = await db.job.findUniqueOrThrow({ where: { id: first.jobId } });
    expect(job).toMatchObject({ kind: "models.validate", payload: { versionId: first.versionId, dims: { batch: 2 } } });
    expect((await db.job.findUniqueOrThrow({ where: { id: third.jobId } })).kind).toBe("models.fetch");
    const detail = await getModel(db, { orgId: operator.orgId, modelId: id });
    expect(detail.versions.map((v) => [v.number, v.status])).toEqual([[3, "fetching"], [2, "validating"], [1, "validating"]]);
    expect(detail.versions[2]).toMatchObject({ sha256: sha(a), bytes: 2000, source: { kind: "upload" } });
    expect((await listModels(db, { orgId: operator.orgId })).find((m) => m.id === id)?.latestVersion?.number).toBe(3);
  });

  it("shows a version whose job was cancelled before it ran as failed", async () => {
    const { id } = await createModel(db, { actor: operator, input: { name: `cancelled ${unique()}`, description: "" } });
    const added = await addVersionFromUrl(db, { actor: operator, input: { modelId: id, url: "https://example.test/model.onnx", dims: {} } });
    await db.job.update({ where: { id: added.jobId }, data: { status: "cancelled" } });
    expect((await getModel(db, { orgId: operator.orgId, modelId: id })).versions[0]).toMatchObject({ status: "failed", error: "The download was cancelled" });
    expect((await listModels(db, { orgId: operator.orgId })).find((m) => m.id === id)?.latestVersion).toMatchObject({ status: "failed" });
  });

  it("refuses a damaged upload, an empty one and one over the limit, storing nothing", async () => {
    const { id } = await createModel(db, { actor: operator, input: { name: `bad ${unique()}`, description: "" } });
    const content = crypto.randomBytes(5000);
    await expect(upload(id, content, { sha256: "0".repeat(64) })).rejects.toThrow(/damaged on the way/);
    await expect(upload(id, content, { maxBytes: 4096 })).rejects.toBeInstanceOf(UploadTooLargeError);
    await expect(upload(id, content, { maxBytes: 4096 })).rejects.toThrow(/MODEL_MAX_UPLOAD_BYTES/);
    await expect(upload(id, Buffer.alloc(0))).rejects.toThrow(/empty/);
    // What people send instead of a model, named, with the way to the model itself.
    const pointer = Buffer.from("version https://git-lfs.github.com/spec/v1\noid sha256:" + "a".repeat(64) + "\nsize 91234567\n");
    await expect(upload(id, pointer)).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/Git LFS pointer.*git lfs pull.*Nothing was stored/) });
    await expect(upload(id, Buffer.from("\n<!DOCTYPE html>\n<html lang=en><head><title>model.onnx</title></head>" + " ".repeat(500)))).rejects.toThrow(/web page.*\/resolve\/main\/model\.onnx/);
    await expect(upload(id, Buffer.from('{"error":"Not found"}'))).rejects.toThrow(/JSON text, not an ONNX model/);
    expect(await blobs.has(sha(pointer))).toBe(false);
    expect(await blobs.has(sha(content))).toBe(false);
    expect((await getModel(db, { orgId: operator.orgId, modelId: id })).versions).toEqual([]);
  });

  it("does not add versions to another organisation's model", async () => {
    const { id } = await createModel(db, { actor: other, input: { name: `theirs ${unique()}`, description: "" } });
    await expect(upload(id, crypto.randomBytes(100))).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(addVersionFromUrl(db, { actor: operator, input: { modelId: id, url: "https://example.test/m.onnx", dims: {} } })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

describe("validateModelVersion", () => {
  async function uploaded() {
    const { id } = await createModel(db, { actor: operator, input: { name: `val ${unique()}`, description: "" } });
    const content = crypto.randomBytes(1000);
    const v = await upload(id, content);
    return { ...v, content, progress: createProgressReporter(db, { id: v.jobId, orgId: operator.orgId }) };
  }
  const run = (v: Awaited<ReturnType<typeof uploaded>>, validate: ValidateOnnxFile, timeoutMs = 5000) =>
    validateModelVersion(db, { versionId: v.versionId, orgId: operator.orgId, dims: { batch: 2 }, runs: 3, timeoutMs, blobs, validate, progress: v.progress, signal: new AbortController().signal });

  it("hands the validator the version's file and stores its report", async () => {
    const v = await uploaded();
    let seen: Buffer | undefined;
    const signature = { inputs: [{ name: "obs", type: "float32", shape: ["batch", 6] }], outputs: [{ name: "action", type: "float32", shape: ["batch", 6] }] };
    const result = await run(v, async ({ file, dims, runs }) => {
      seen = fs.readFileSync(file);
      expect({ dims, runs }).toEqual({ dims: { batch: 2 }, runs: 3 });
      return { ok: true, opset: 17, producer: "pytorch 2.5", signature, p50Ms: 1, p95Ms: 2, peakRssBytes: 1, maxAbsDiff: null, problems: [] };
    });
    expect(result).toEqual({ status: "ready" });
    expect(seen?.equals(v.content)).toBe(true);
    expect(await db.modelVersion.findUniqueOrThrow({ where: { id: v.versionId } })).toMatchObject({ status: "ready", opset: 17, producer: "pytorch 2.5", signature, error: null });
  });

  it("marks a version invalid with the report's problems", async () => {
    const v = await uploaded();
    // The job that found it invalid fails, saying so (never a green "succeeded"), and the version keeps the report.
    await expect(run(v, async () => ({ ok: false, opset: 9, producer: null, signature: null, problems: ["opset 9 is older than 13"] }))).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/is invalid: opset 9 is older than 13/) });
    expect(await db.modelVersion.findUniqueOrThrow({ where: { id: v.versionId } })).toMatchObject({ status: "invalid", error: "opset 9 is older than 13" });
  });

  it("fails at MODEL_VALIDATION_TIMEOUT and says so", async () => {
    const v = await uploaded();
    await expect(run(v, () => new Promise(() => {}), 200)).rejects.toThrow(/MODEL_VALIDATION_TIMEOUT/);
    expect(await db.modelVersion.findUniqueOrThrow({ where: { id: v.versionId } })).toMatchObject({ status: "failed", error: expect.stringMatching(/MODEL_VALIDATION_TIMEOUT/) });
  });

  it("revalidates a version with its file, refusing while a validation is queued", async () => {
    const v = await uploaded();
    await expect(revalidateVersion(db, { actor: operator, input: { versionId: v.versionId, dims: {} }, blobs })).rejects.toMatchObject({ code: "CONFLICT" });
    await db.job.update({ where: { id: v.jobId }, data: { status: "failed" } });
    const testVector = { inputs: { x: [[1, 2, 3, 4]] }, outputs: { y: [[0.5, 0.25, 0]] }, tolerance: 1e-4 };
    const again = await revalidateVersion(db, { actor: operator, input: { versionId: v.versionId, dims: { batch: 4 }, runs: 5, testVector }, blobs });
    const job = await db.job.findUniqueOrThrow({ where: { id: again.jobId } });
    expect(job).toMatchObject({ kind: "models.validate", payload: { dims: { batch: 4 }, runs: 5 } });
    // The validator is handed the vector the caller sent.
    let handed: unknown;
    await validateModelVersion(db, {
      versionId: v.versionId, orgId: operator.orgId, dims: {}, runs: 1, timeoutMs: 5000, blobs, progress: v.progress, signal: new AbortController().signal,
      testVectorSha256: (job.payload as { testVectorSha256: string }).testVectorSha256,
      validate: async ({ testVector: given }) => ((handed = given), { ok: true, opset: 17, producer: null, signature: null, problems: [] }),
    });
    expect(handed).toEqual(testVector);
    await expect(revalidateVersion(db, { actor: other, input: { versionId: v.versionId, dims: {} }, blobs })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});
