import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { buildBatchOneModel, buildLookupModel } from "../../tests/helpers/onnx-models";
import { createCaller } from "../api/root";
import { resolveRequestIdentity } from "../auth/request-actor";
import type { OrgActor } from "../auth/roles";
import { createApiToken } from "../auth/tokens.service";
import { createDb, type Db } from "../db";
import { createProgressReporter } from "../jobs/progress";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { addVersionFromUpload, createModel, revalidateVersion } from "./registry.service";
import { validateOnnxFile } from "./validation.service";
import { validateModelVersion } from "./version-validation.service";

// An endpoint serving, or a device running, a version that a later validation found invalid
// keeps running it, and says so on the lists and pages people read: through the tRPC outputs
// the pages use, as a viewer. The validations are real (the onnxruntime child).

let database: TestDatabase;
let db: Db;
let operator: OrgActor;
const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-flags-"));
const blobs = createLocalBlobStore({ root });
const unique = () => crypto.randomUUID().slice(0, 8);

beforeAll(async () => {
  database = await createTestDatabase("flags");
  db = createDb(database.url, 3);
  operator = (await createOrgWithMember(db, "operator")).actor;
});
afterAll(async () => {
  fs.rmSync(root, { recursive: true, force: true });
  await db?.$disconnect();
  await database?.drop();
});

/** The version's validate job, run as the worker runs it. */
async function runValidation(versionId: string) {
  const version = await db.modelVersion.findUniqueOrThrow({ where: { id: versionId } });
  const job = await db.job.findUniqueOrThrow({ where: { id: version.jobId! } });
  const payload = job.payload as { dims: Record<string, number>; testVectorSha256?: string };
  await validateModelVersion(db, {
    versionId, orgId: operator.orgId, dims: payload.dims, runs: 2, testVectorSha256: payload.testVectorSha256, timeoutMs: 60_000, blobs,
    validate: validateOnnxFile, progress: createProgressReporter(db, { id: job.id, orgId: operator.orgId }), signal: new AbortController().signal,
  }).catch(() => {});
  await db.job.update({ where: { id: job.id }, data: { status: "succeeded" } });
  return db.modelVersion.findUniqueOrThrow({ where: { id: versionId } });
}

/** A ready version, served by an endpoint and running on a device. */
async function inUse(bytes: Buffer) {
  const modelName = `flags ${unique()}`;
  const { id } = await createModel(db, { actor: operator, input: { name: modelName, description: "" } });
  const added = await addVersionFromUpload(db, { actor: operator, modelId: id, body: Readable.from([bytes]), blobs, maxBytes: 1_000_000, dims: {} });
  expect((await runValidation(added.versionId)).status).toBe("ready");
  const endpoint = await db.endpoint.create({ data: { orgId: operator.orgId, name: `ep-${unique()}`, modelVersionId: added.versionId, status: "ready", settings: {} } });
  const device = await db.device.create({
    data: { orgId: operator.orgId, name: `dev-${unique()}`, host: "192.0.2.7", username: "robot", authKind: "password", credential: "v1:", modelDir: "/opt/gantry", restartCommand: "true", healthCommand: "true", state: "online", currentVersionId: added.versionId },
  });
  return { modelName, versionId: added.versionId, endpointId: endpoint.id, deviceId: device.id };
}

async function asViewer() {
  const viewer = await addMember(db, operator.orgId, "viewer");
  const { token } = await createApiToken(db, { actor: viewer, input: { name: "viewer", scopes: ["read"] } });
  return createCaller({ ...(await resolveRequestIdentity(db, new Headers({ authorization: `Bearer ${token}` }))), db, hub: {} as never, baseUrl: "http://localhost" });
}

/** What the endpoint and device lists and pages say about the version they run. */
async function warnings(caller: Awaited<ReturnType<typeof asViewer>>, used: Awaited<ReturnType<typeof inUse>>) {
  return {
    endpointList: (await caller.endpoints.list()).find((e) => e.id === used.endpointId)?.versionWarning,
    endpointPage: (await caller.endpoints.get({ endpointId: used.endpointId })).versionWarning,
    deviceList: (await caller.fleet.devices()).find((d) => d.id === used.deviceId)?.versionWarning,
    devicePage: (await caller.fleet.device({ deviceId: used.deviceId })).versionWarning,
  };
}

describe("endpoints and devices running a version", () => {
  it("are flagged, naming the version and why, once validating it again finds it invalid", async () => {
    const used = await inUse(buildBatchOneModel());
    const caller = await asViewer();
    expect(await warnings(caller, used)).toEqual({ endpointList: null, endpointPage: null, deviceList: null, devicePage: null });

    // Validated again at batch 2, as a team moving to batched inference would: the model was
    // exported for batch 1 and onnxruntime refuses to run it.
    const again = await revalidateVersion(db, { actor: operator, input: { versionId: used.versionId, dims: { batch: 2 } }, blobs });
    // While it is being validated nothing is flagged: it has not been found invalid.
    expect(await warnings(caller, used)).toEqual({ endpointList: null, endpointPage: null, deviceList: null, devicePage: null });
    const version = await runValidation(again.versionId);
    expect(version.status).toBe("invalid");
    expect(version.error).toMatch(/^onnxruntime could not run the model: /);

    const warning = `Version 1 of ${used.modelName} is invalid since its last validation: ${version.error}`;
    expect(await warnings(caller, used)).toEqual({ endpointList: warning, endpointPage: warning, deviceList: warning, devicePage: warning });
    // They keep serving and running it: flagged, not stopped.
    expect(await db.endpoint.findUniqueOrThrow({ where: { id: used.endpointId } })).toMatchObject({ status: "ready", modelVersionId: used.versionId });
  });

  it("are not flagged when only a test vector failed: the version stays ready", async () => {
    const used = await inUse(buildLookupModel());
    const again = await revalidateVersion(db, { actor: operator, input: { versionId: used.versionId, dims: {}, testVector: { inputs: { ids: [7] } } }, blobs });
    const version = await runValidation(again.versionId);
    expect(version.status).toBe("ready");
    expect(version.validation).toMatchObject({ ok: true, testVector: { ok: false } });
    expect(await warnings(await asViewer(), used)).toEqual({ endpointList: null, endpointPage: null, deviceList: null, devicePage: null });
  });
});
