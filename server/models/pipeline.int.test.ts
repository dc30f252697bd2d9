import crypto from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { startHubStandIn, type HubStandIn } from "../../tests/helpers/hub-stand-in";
import { buildGarbage, buildMlp } from "../../tests/helpers/onnx-models";
import { startWorker, type StartedWorker } from "../../worker/worker";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { blobStore } from "../storage/blobs";
import { addVersionFromHubInput } from "./models.schemas";
import { addVersionFromHub, addVersionFromUpload, createModel } from "./registry.service";

// The whole path through a real worker: the hub stand-in, the fetch task, the validate task
// and onnxruntime, on a database of its own so no other test file's worker takes these jobs.

let database: TestDatabase;
let db: Db;
let worker: StartedWorker;
let hub: HubStandIn;
let operator: OrgActor;
const mlp = buildMlp();

beforeAll(async () => {
  database = await createTestDatabase("models");
  db = createDb(database.url, 3);
  worker = await startWorker({ url: database.url, concurrency: 2, log: () => {} });
  hub = await startHubStandIn([{ repo: "lab/act-private", filename: "policy/model.onnx", content: mlp, isPrivate: true }]);
  operator = (await createOrgWithMember(db, "operator")).actor;
});
afterAll(async () => {
  await worker?.stop();
  await hub?.close();
  await db?.$disconnect();
  await database?.drop();
});

const settled = (versionId: string) =>
  waitFor(async () => {
    const v = await db.modelVersion.findUniqueOrThrow({ where: { id: versionId } });
    return ["ready", "invalid", "failed"].includes(v.status) ? v : null;
  }, { timeoutMs: 60_000, what: "the version to settle" });

describe("model versions through the worker", () => {
  it("fetches a private hub file with a token, validates it and marks it ready", async () => {
    const { id } = await createModel(db, { actor: operator, input: { name: "ACT hub", description: "" } });
    const input = addVersionFromHubInput.parse({ modelId: id, repo: "lab/act-private", filename: "policy/model.onnx", token: hub.token, dims: { batch: 2 } });
    const added = await addVersionFromHub(db, { actor: operator, input, endpoint: hub.url, blobs: blobStore(), secretKey: env().ENCRYPTION_KEY });
    const version = await settled(added.versionId);
    expect(version).toMatchObject({ status: "ready", sha256: crypto.createHash("sha256").update(mlp).digest("hex"), error: null });
    expect(version.signature).toMatchObject({ inputs: [{ name: "x" }], outputs: [{ name: "y" }] });
    expect(version.opset).toBeGreaterThan(0);
    const fetchJob = await db.job.findUniqueOrThrow({ where: { id: added.jobId } });
    expect(fetchJob.status).toBe("succeeded");
    const events = await db.jobEvent.findMany({ where: { jobId: added.jobId }, orderBy: { seq: "asc" } });
    expect(events.some((e) => /Downloading policy\/model.onnx from lab\/act-private@main/.test(e.message))).toBe(true);
    expect(JSON.stringify(await db.job.findMany({ where: { orgId: operator.orgId } }))).not.toContain(hub.token);
  });

  it("marks an uploaded file that is not a model invalid, saying why", async () => {
    const { id } = await createModel(db, { actor: operator, input: { name: "garbage", description: "" } });
    const added = await addVersionFromUpload(db, { actor: operator, modelId: id, body: Readable.from([buildGarbage()]), blobs: blobStore(), maxBytes: 1_000_000, dims: {} });
    const version = await settled(added.versionId);
    expect(version.status).toBe("invalid");
    expect(version.error).toBeTruthy();
    // The job says so too: it failed, naming the version, rather than showing a green "succeeded".
    const job = await waitFor(async () => {
      const j = await db.job.findUniqueOrThrow({ where: { id: added.jobId } });
      return ["succeeded", "failed"].includes(j.status) && j;
    }, { what: "the validate job to end" });
    expect(job.status).toBe("failed");
    expect(job.error).toMatch(/garbage.* is invalid/);
  });
});
