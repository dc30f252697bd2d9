import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { buildLookupModel, buildMlp, runMlpInJs } from "../../tests/helpers/onnx-models";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { createProgressReporter } from "../jobs/progress";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { addVersionFromUpload, createModel, revalidateVersion } from "./registry.service";
import { validateOnnxFile } from "./validation.service";
import { validationReportSchema } from "./validation.schemas";
import { validateModelVersion } from "./version-validation.service";

// Test vectors as people give them: checked when given (a bad one is refused and nothing
// changes, even on a served version), in the form the docs show, at upload, and never
// demoting a version when the model then fails on one. Validation runs the real
// onnxruntime child; the jobs are run here, on a database of this file's own, so no other
// file's worker takes them.

let database: TestDatabase;
let db: Db;
let operator: OrgActor;
const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-vectors-"));
const blobs = createLocalBlobStore({ root });
const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
const unique = () => crypto.randomUUID().slice(0, 8);

beforeAll(async () => {
  database = await createTestDatabase("vectors");
  db = createDb(database.url, 3);
  operator = (await createOrgWithMember(db, "operator")).actor;
});
afterAll(async () => {
  fs.rmSync(root, { recursive: true, force: true });
  await db?.$disconnect();
  await database?.drop();
});

/** The version's validate job, run as the worker runs it, with the real onnxruntime child. */
async function runValidation(versionId: string) {
  const version = await db.modelVersion.findUniqueOrThrow({ where: { id: versionId } });
  const job = await db.job.findUniqueOrThrow({ where: { id: version.jobId! } });
  const payload = job.payload as { dims: Record<string, number>; testVectorSha256?: string };
  await validateModelVersion(db, {
    versionId,
    orgId: operator.orgId,
    dims: payload.dims,
    runs: 3,
    testVectorSha256: payload.testVectorSha256,
    timeoutMs: 60_000,
    blobs,
    validate: validateOnnxFile,
    progress: createProgressReporter(db, { id: job.id, orgId: operator.orgId }),
    signal: new AbortController().signal,
  }).catch(() => {});
  await db.job.update({ where: { id: job.id }, data: { status: "succeeded" } });
  const after = await db.modelVersion.findUniqueOrThrow({ where: { id: versionId } });
  return { version: after, report: validationReportSchema.parse(after.validation) };
}

async function uploadVersion(bytes: Buffer, testVector?: unknown) {
  const { id } = await createModel(db, { actor: operator, input: { name: `vectors ${unique()}`, description: "" } });
  const added = await addVersionFromUpload(db, { actor: operator, modelId: id, body: Readable.from([bytes]), blobs, maxBytes: 10_000_000, dims: {}, testVector });
  return { modelId: id, ...added };
}

/** The body of the docs' OIP curl example (docs/models.md, "Five ways to test an endpoint"), exactly. */
function docsOipBody(): unknown {
  const docs = fs.readFileSync(path.join(import.meta.dirname, "../../docs/models.md"), "utf8");
  const body = /-d '(\{"inputs":\[\{"name".*?\})'/.exec(docs)?.[1];
  if (!body) throw new Error("docs/models.md no longer has its OIP curl example");
  return JSON.parse(body);
}

describe("a test vector given to a served version", () => {
  it("is refused at once when it does not fit, leaving the version's status, report and jobs as they were", async () => {
    const added = await uploadVersion(buildMlp());
    const { version: ready, report } = await runValidation(added.versionId);
    expect(ready.status).toBe("ready");
    expect(report.p50Ms).toBeGreaterThan(0);
    await db.endpoint.create({ data: { orgId: operator.orgId, name: `served-${unique()}`, modelVersionId: added.versionId, status: "ready", settings: {} } });
    const jobs = await db.job.count({ where: { orgId: operator.orgId } });
    const audit = await db.auditEvent.count({ where: { orgId: operator.orgId } });

    const refusals: Array<[unknown, RegExp]> = [
      [{ inputs: { x: { shape: [1, 4], data: [1, 2, 3] } } }, /^The test vector cannot be read: Input "x" has 3 values, but its shape \[1, 4\] holds 4\. Nothing was changed/],
      [{ inputs: { x: [[1, 2, 3]] } }, /^The test vector does not fit version 1 of vectors \w+: Input "x" has shape \[batch, 4\] in the model, so axis 1 must be 4, but the test vector gives 3 \(shape \[1, 3\]\)\. Nothing was changed: version 1 of vectors \w+ keeps its status and report$/],
      [{ inputs: { obs: [[1, 2, 3, 4]] } }, /Input "x" is missing from the test vector \(the model's inputs: "x"\); Input "obs" is not one of the model's inputs \("x"\)/],
      [{ inputs: [{ name: "x", shape: [1, 4], datatype: "INT64", data: [1, 2, 3, 4] }] }, /Input "x" is float32 \(FP32\) in the model, but the test vector gives int64 \(INT64\)/],
      [{ inputs: { x: [[1, 2, 3, 4]] }, outputs: { y: [[1, 2, 3], [4, 5, 6]] } }, /Output "y" has axis 0 "batch", which input "x" gives as 1, but the test vector gives it 2 here/],
      ["not a vector", /^The test vector cannot be read: A test vector is a JSON object, not the text "not a vector"/],
    ];
    for (const [testVector, message] of refusals) {
      await expect(revalidateVersion(db, { actor: operator, input: { versionId: added.versionId, dims: {}, testVector: testVector as never }, blobs })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(message) });
    }
    expect(await db.modelVersion.findUniqueOrThrow({ where: { id: added.versionId } })).toEqual(ready);
    expect(await db.job.count({ where: { orgId: operator.orgId } })).toBe(jobs);
    expect(await db.auditEvent.count({ where: { orgId: operator.orgId } })).toBe(audit);
  });

  it("takes the docs' Open Inference Protocol example body, and the version stays ready with its vector's outcome", async () => {
    const added = await uploadVersion(buildMlp());
    await runValidation(added.versionId);
    const again = await revalidateVersion(db, { actor: operator, input: { versionId: added.versionId, dims: {}, testVector: docsOipBody() as never }, blobs });
    const { version, report } = await runValidation(again.versionId);
    expect(version.status).toBe("ready");
    expect(report.testVector).toEqual({ ok: true, maxAbsDiff: null, tolerance: null, problems: [] });
    expect(report.p50Ms).toBeGreaterThan(0);
  });

  it("keeps the version ready, with its timings, when the model throws on a vector that fit its declared inputs", async () => {
    const added = await uploadVersion(buildLookupModel());
    expect((await runValidation(added.versionId)).version.status).toBe("ready");
    // ids 0–3 are what validation generates; 9 is an int64 of the right shape, out of the table.
    const again = await revalidateVersion(db, { actor: operator, input: { versionId: added.versionId, dims: { n: 2 }, testVector: { inputs: [{ name: "ids", shape: [2], datatype: "INT64", data: [1, 9] }] } }, blobs });
    const { version, report } = await runValidation(again.versionId);
    expect(version).toMatchObject({ status: "ready", error: null });
    expect(report).toMatchObject({ ok: true, problems: [], runs: 3 });
    expect(report.p50Ms).toBeGreaterThan(0);
    expect(report.testVector).toMatchObject({ ok: false, problems: [expect.stringMatching(/^onnxruntime could not run the test vector's inputs: /)] });
    const events = await db.jobEvent.findMany({ where: { jobId: again.jobId }, orderBy: { seq: "asc" } });
    expect(events.some((e) => e.level === "warn" && /The test vector did not pass: .* stays ready/.test(e.message))).toBe(true);
  });
});

describe("a test vector given at upload", () => {
  const x = [[0.5, -0.25, 1, 0]];

  it("is checked against the uploaded model and run by its first validation", async () => {
    const testVector = { inputs: { x }, outputs: [{ name: "y", shape: [1, 3], datatype: "FP32", data: runMlpInJs(x).flat() }], tolerance: 1e-5 };
    const added = await uploadVersion(buildMlp(), testVector);
    const job = await db.job.findUniqueOrThrow({ where: { id: added.jobId } });
    const vectorSha = (job.payload as { testVectorSha256?: string }).testVectorSha256;
    expect(vectorSha).toMatch(/^[0-9a-f]{64}$/);
    const { version, report } = await runValidation(added.versionId);
    expect(version.status).toBe("ready");
    expect(report.testVector).toMatchObject({ ok: true, tolerance: 1e-5, problems: [] });
    expect(report.testVector!.maxAbsDiff!).toBeLessThan(1e-5);
  });

  it("is refused when it does not fit the model, storing neither the file nor a version", async () => {
    const bytes = buildMlp(`batch_${unique()}`);
    await expect(uploadVersion(bytes, { inputs: { x: [[1, 2, 3]] } })).rejects.toMatchObject({
      code: "BAD_REQUEST",
      message: expect.stringMatching(/^The test vector does not fit the uploaded model: Input "x" has shape \[batch_\w+, 4\] in the model, so axis 1 must be 4, .*Nothing was stored/),
    });
    await expect(uploadVersion(bytes, { inputs: { x: "four numbers" } })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/^The test vector cannot be read: Input "x" is the text/) });
    expect(await blobs.has(sha(bytes))).toBe(false);
    expect(await db.modelVersion.count({ where: { orgId: operator.orgId, sha256: sha(bytes) } })).toBe(0);
  });
});
