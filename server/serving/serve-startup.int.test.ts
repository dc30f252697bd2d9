import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createModelServer } from "../../serve/server";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { buildLargeModel, largeModelSignature } from "../../tests/helpers/large-model";
import { buildGarbage, buildMlp, runMlpInJs, seededValues } from "../../tests/helpers/onnx-models";
import { startPgProxy, type PgProxy } from "../../tests/helpers/pg-proxy";
import { addReadyVersion, mlpSignature } from "../../tests/helpers/serving";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import type { OrgActor } from "../auth/roles";
import { createApiToken } from "../auth/tokens.service";
import { createDb, type Db } from "../db";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { createEndpointInput } from "./endpoints.schemas";
import { createEndpoint } from "./endpoints.service";
import { InferenceEngine } from "./inference.service";
import { mintInternalToken } from "./internal-token";
import { readBlob } from "./model-files";

// The model server starting with endpoints already deployed, as after a restart: real
// onnxruntime, real HTTP, a real Postgres. One endpoint holds a 200 MB model that takes
// onnxruntime seconds to load; a small one beside it must not wait for it, and neither may be
// answered as if it did not exist.

let database: TestDatabase;
let db: Db;
let owner: OrgActor;
let token: string;
const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-serve-startup-"));
const blobs = createLocalBlobStore({ root });
const servers: Array<ReturnType<typeof createModelServer>> = [];
const x = [seededValues(4, 11)];

/** An endpoint as a deploy leaves it: ready in the database, for the next model server to load. */
async function deployed(name: string, bytes: Buffer, signature = mlpSignature, settings: Record<string, unknown> = {}) {
  const { versionId } = await addReadyVersion(db, blobs, { actor: owner, bytes, signature });
  const endpoint = await createEndpoint(db, { actor: owner, input: createEndpointInput.parse({ name, modelVersionId: versionId, settings }) });
  await db.endpoint.update({ where: { id: endpoint.id }, data: { status: "ready" } });
  return endpoint;
}

function startServer(on: Db, options: { internalSecret?: string } = {}) {
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 });
  const server = createModelServer({ db: on, engine, pollMs: 60_000, statsFlushMs: 600_000, ...options });
  servers.push(server);
  return server;
}

async function call(base: string, method: string, route: string, body?: unknown, bearer = token) {
  const res = await fetch(base + route, {
    method,
    headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as any };
}

const inferMlp = (base: string, name: string, bearer?: string) => call(base, "POST", `/v2/models/${name}/infer`, { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: x.flat() }] }, bearer);

beforeAll(async () => {
  database = await createTestDatabase("serve_startup");
  db = createDb(database.url, 4);
  owner = (await createOrgWithMember(db, "owner")).actor;
  token = (await createApiToken(db, { actor: owner, input: { name: "serve", scopes: ["read"] } })).token;
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await db?.$disconnect();
  await database?.drop();
  fs.rmSync(root, { recursive: true, force: true });
});

describe("the model server starting up", () => {
  it("knows every endpoint before it loads any: a large one answers loading, a small one is served as soon as it is loaded", async () => {
    // Created first, so a server loading in the order of the table would start with it.
    const large = await deployed("large", buildLargeModel(200), largeModelSignature, { concurrency: 1 });
    const small = await deployed("small", buildMlp());

    const model = startServer(db);
    const base = `http://127.0.0.1:${(await model.listen(0, "127.0.0.1")).port}`;

    // Straight after start-up: the large model is known and loading, not missing.
    const loading = await call(base, "POST", "/v2/models/large/infer", { inputs: [{ name: "x", shape: [1, 1], datatype: "FP32", data: [0.5] }] });
    expect(loading.status).toBe(503);
    expect(loading.retryAfter).toBe("2");
    expect(loading.body.error).toMatch(/^Endpoint large is loading version 1 of model-\w+; retry in a few seconds$/);
    const notReady = await call(base, "GET", "/v2/models/large/ready");
    expect(notReady).toEqual({ status: 503, retryAfter: "2", body: { name: "large", ready: false, state: "loading" } });
    expect((await call(base, "GET", "/v2/models/large")).status).toBe(503);
    const health = await call(base, "GET", "/v2/health/ready");
    expect(health.status).toBe(503);
    expect(health.body).toEqual({ ready: false, error: "The model server is loading its endpoints" });

    // A name that is no endpoint is still 404, at once.
    const missing = await inferMlp(base, "nope");
    expect(missing.status).toBe(404);
    expect(missing.retryAfter).toBeNull();
    expect(missing.body.error).toMatch(/no endpoint named nope/);
    expect((await call(base, "GET", "/v2/models/nope/ready")).status).toBe(404);

    // The small model is served while the large one is still loading.
    await expect.poll(async () => (await call(base, "GET", "/v2/models/small/ready")).status, { timeout: 20_000, interval: 50 }).toBe(200);
    expect((await call(base, "GET", "/v2/models/large/ready")).body).toEqual({ name: "large", ready: false, state: "loading" });
    const answer = await inferMlp(base, "small");
    expect(answer.status).toBe(200);
    answer.body.outputs[0].data.forEach((v: number, i: number) => expect(Math.abs(v - runMlpInJs(x)[0][i])).toBeLessThan(1e-5));
    expect((await db.endpoint.findUniqueOrThrow({ where: { id: small.id } })).status).toBe("ready");

    // Then the large one, with the numbers it should give.
    await model.syncNow();
    expect((await call(base, "GET", "/v2/models/large/ready")).status).toBe(200);
    const largeAnswer = await call(base, "POST", "/v2/models/large/infer", { inputs: [{ name: "x", shape: [2, 1], datatype: "FP32", data: [0.5, -2] }] });
    expect(largeAnswer.status).toBe(200);
    expect(largeAnswer.body.outputs[0].data).toEqual([0.5, -2]);
    expect((await call(base, "GET", "/v2/health/ready")).body).toEqual({ ready: true });
    expect((await db.endpoint.findUniqueOrThrow({ where: { id: large.id } })).status).toBe("ready");
    await model.close();
    await db.endpoint.updateMany({ where: { id: { in: [large.id, small.id] } }, data: { status: "stopped" } });
  }, 120_000);

  it("says why an endpoint whose model cannot load is not serving, before and after it is recorded as failed", async () => {
    const broken = await deployed("broken", buildGarbage());
    const model = startServer(db);
    const base = `http://127.0.0.1:${(await model.listen(0, "127.0.0.1")).port}`;
    await model.syncNow();
    const row = await db.endpoint.findUniqueOrThrow({ where: { id: broken.id } });
    expect(row.status).toBe("failed");
    expect(row.error).toMatch(/^Version 1 of model-\w+ could not be loaded: /);

    const failed = await inferMlp(base, "broken");
    expect(failed.status).toBe(503);
    expect(failed.retryAfter).toBeNull(); // waiting will not help: another version must be deployed
    expect(failed.body.error).toMatch(/^Endpoint broken is not serving: version 1 of model-\w+ could not be loaded \(.+\); deploy a version that loads$/);
    expect((await call(base, "GET", "/v2/models/broken/ready")).body).toEqual({ name: "broken", ready: false, state: "failed" });

    // The next poll reads it as failed from the database (and a restarted server would too): still said, not 404.
    await model.syncNow();
    const again = await inferMlp(base, "broken");
    expect(again.status).toBe(503);
    expect(again.body.error).toBe(`Endpoint broken is not serving: ${row.error}; deploy a version that loads`);
    expect((await call(base, "GET", "/v2/health/ready")).status).toBe(200);
    await model.close();
    await db.endpoint.update({ where: { id: broken.id }, data: { status: "stopped" } });
  }, 60_000);

  it("answers 503 rather than 404 until it has read its endpoints, and serves them once the database answers", async () => {
    await deployed("early", buildMlp());
    const proxy: PgProxy = await startPgProxy(database.url);
    const viaProxy = createDb(proxy.urlFor(database.url), 2);
    const secret = crypto.randomBytes(32).toString("base64url");
    try {
      await proxy.cut();
      // A portal token needs no database, so the request gets as far as the endpoint's name.
      const model = startServer(viaProxy, { internalSecret: secret });
      const base = `http://127.0.0.1:${(await model.listen(0, "127.0.0.1")).port}`;
      for (const name of ["early", "nope"]) {
        const early = await inferMlp(base, name, mintInternalToken(secret, owner));
        expect(early.status).toBe(503);
        expect(early.retryAfter).toBe("2");
        expect(early.body.error).toBe("The model server cannot reach its database to read which endpoints it serves; retry in a few seconds");
      }
      expect((await call(base, "GET", "/v2/health/ready")).body).toEqual({ ready: false, error: "The model server has not read its endpoints from the database yet" });

      await proxy.restore();
      await model.syncNow();
      expect((await inferMlp(base, "early", mintInternalToken(secret, owner))).status).toBe(200);
      expect((await inferMlp(base, "nope", mintInternalToken(secret, owner))).status).toBe(404);
      await model.close();
    } finally {
      await viaProxy.$disconnect();
      await proxy.close();
    }
  }, 60_000);
});
