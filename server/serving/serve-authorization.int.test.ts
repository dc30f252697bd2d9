import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { buildMlp } from "../../tests/helpers/onnx-models";
import { createModelServer } from "../../serve/server";
import { createDb, type Db } from "../db";
import { createApiToken, revokeApiToken } from "../auth/tokens.service";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { InferenceEngine } from "./inference.service";
import { readBlob } from "./model-files";
import { mintInternalToken } from "./internal-token";
import { addReadyVersion, deployOn, mlpSignature } from "../../tests/helpers/serving";

// Every route of the model server against every kind of caller: none, a token that is not
// one, a forged portal token, another organisation's token, and a read-only token of the
// endpoint's own organisation. Only the last gets an answer about the endpoint.

let database: TestDatabase;
let db: Db;
let model: ReturnType<typeof createModelServer>;
let base: string;
const secret = crypto.randomBytes(32).toString("base64url");
const bearers: Record<string, string | null> = {};
const blobs = createLocalBlobStore({ root: fs.mkdtempSync(path.join(os.tmpdir(), "gantry-serve-auth-")) });

const x = { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [0, 0, 0, 0] }] };
const routes: Array<{ method: "GET" | "POST"; path: string; body?: unknown }> = [
  { method: "GET", path: "/v2/models/mlp" },
  { method: "GET", path: "/v2/models/mlp/versions/1" },
  { method: "GET", path: "/v2/models/mlp/ready" },
  { method: "GET", path: "/v2/models/mlp/versions/1/ready" },
  { method: "POST", path: "/v2/models/mlp/infer", body: x },
  { method: "POST", path: "/v2/models/mlp/versions/1/infer", body: x },
  { method: "POST", path: "/predict/mlp", body: { inputs: { x: [[0, 0, 0, 0]] } } },
];
const publicRoutes = ["/v2/health/live", "/v2/health/ready", "/v2"];
const metricsToken = crypto.randomBytes(32).toString("base64url");
let ownOrgId: string;
let otherOrgId: string;
/** API tokens of instance admins (the flag the first account gets, and an INSTANCE_ADMINS email), each in an organisation of its own. */
const instanceAdminTokens: string[] = [];
const listedAdminEmail = `ops-${crypto.randomBytes(4).toString("hex")}@example.test`;

beforeAll(async () => {
  database = await createTestDatabase("serve_auth");
  db = createDb(database.url, 4);
  const { actor: owner } = await createOrgWithMember(db, "owner");
  const viewer = await addMember(db, owner.orgId, "viewer");
  const other = (await createOrgWithMember(db, "owner")).actor;
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 });
  model = createModelServer({ db, engine, internalSecret: secret, metricsToken, instanceAdmins: [listedAdminEmail], pollMs: 60_000, statsFlushMs: 600_000 });
  base = `http://127.0.0.1:${(await model.listen(0, "127.0.0.1")).port}`;
  const { versionId } = await addReadyVersion(db, blobs, { actor: owner, bytes: buildMlp(), signature: mlpSignature });
  await deployOn(db, model, { actor: owner, name: "mlp", versionId });
  // Another organisation serves an endpoint of its own, whose name and traffic are its business.
  const other2 = await addReadyVersion(db, blobs, { actor: other, bytes: buildMlp(), signature: mlpSignature });
  await deployOn(db, model, { actor: other, name: "other-secret-policy", versionId: other2.versionId });
  ownOrgId = owner.orgId;
  otherOrgId = other.orgId;
  for (const data of [{ isInstanceAdmin: true }, { email: listedAdminEmail }]) {
    const admin = (await createOrgWithMember(db, "owner")).actor;
    await db.user.update({ where: { id: admin.userId }, data });
    instanceAdminTokens.push((await createApiToken(db, { actor: admin, input: { name: "prometheus", scopes: ["read"] } })).token);
  }

  const revoked = await createApiToken(db, { actor: viewer, input: { name: "revoked", scopes: ["read"] } });
  await revokeApiToken(db, { actor: viewer, tokenId: revoked.id });
  Object.assign(bearers, {
    none: null,
    "not a token": "hello",
    "unknown token": `gty_${crypto.randomBytes(4).toString("hex")}_${crypto.randomBytes(32).toString("base64url")}`,
    "revoked token": revoked.token,
    "forged portal token": mintInternalToken(crypto.randomBytes(32).toString("base64url"), viewer),
    "another organisation's token": (await createApiToken(db, { actor: other, input: { name: "other", scopes: ["read"] } })).token,
    "another organisation's portal token": mintInternalToken(secret, other),
    "own read-only token": (await createApiToken(db, { actor: viewer, input: { name: "mine", scopes: ["read"] } })).token,
    "own portal token": mintInternalToken(secret, viewer),
  });
});

afterAll(async () => {
  await model?.close();
  await db?.$disconnect();
  await database?.drop();
});

async function call(method: string, route: string, bearer: string | null, body?: unknown) {
  const res = await fetch(base + route, {
    method,
    headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, text: await res.text() };
}

describe("model server authorization", () => {
  it("answers each endpoint route only to its own organisation", async () => {
    const expected: Record<string, number[]> = {
      none: [401],
      "not a token": [401],
      "unknown token": [401],
      "revoked token": [401],
      "forged portal token": [401],
      // Names resolve inside the caller's organisation: to another one the endpoint does not exist.
      "another organisation's token": [404, 503],
      "another organisation's portal token": [404, 503],
      "own read-only token": [200],
      "own portal token": [200],
    };
    for (const route of routes) {
      for (const [who, bearer] of Object.entries(bearers)) {
        const { status, text } = await call(route.method, route.path, bearer, route.body);
        expect({ route: `${route.method} ${route.path}`, who, status }).toEqual({ route: `${route.method} ${route.path}`, who, status: expect.toBeOneOf(expected[who]) });
        if (status !== 200) expect(text).not.toMatch(/"outputs"|"inputs"|"versions"/);
      }
    }
  });

  it("shows /metrics whole to the metrics token and instance admins, and to any other API token only for its own organisation", async () => {
    // Traffic on both organisations' endpoints, so both have series to show.
    expect((await call("POST", "/predict/mlp", bearers["own read-only token"], { inputs: { x: [[0, 0, 0, 0]] } })).status).toBe(200);
    expect((await call("POST", "/predict/other-secret-policy", bearers["another organisation's token"], { inputs: { x: [[0, 0, 0, 0]] } })).status).toBe(200);
    const series = (text: string, orgId: string, endpoint: string) => new RegExp(`gantry_serve_requests_total\\{org="${orgId}",endpoint="${endpoint}",outcome="success"\\} [1-9]`).test(text);

    for (const who of ["none", "not a token", "unknown token", "revoked token", "forged portal token"]) {
      const { status, text } = await call("GET", "/metrics", bearers[who]);
      expect({ who, status }).toEqual({ who, status: 401 });
      expect(text).not.toMatch(/mlp|other-secret-policy|gantry_serve/);
    }
    expect((await call("GET", "/metrics", crypto.randomBytes(32).toString("base64url"))).status).toBe(401);

    for (const bearer of [metricsToken, ...instanceAdminTokens]) {
      const whole = await call("GET", "/metrics", bearer);
      expect(whole.status).toBe(200);
      expect(series(whole.text, ownOrgId, "mlp") && series(whole.text, otherOrgId, "other-secret-policy")).toBe(true);
    }

    for (const who of ["own read-only token", "own portal token"]) {
      const own = await call("GET", "/metrics", bearers[who]);
      expect({ who, status: own.status }).toEqual({ who, status: 200 });
      expect(series(own.text, ownOrgId, "mlp")).toBe(true);
      expect(own.text).not.toContain("other-secret-policy");
      expect(own.text).not.toContain(otherOrgId);
    }
    const theirs = await call("GET", "/metrics", bearers["another organisation's token"]);
    expect(series(theirs.text, otherOrgId, "other-secret-policy")).toBe(true);
    expect(theirs.text).not.toContain(ownOrgId);
    expect(theirs.text).not.toMatch(/endpoint="mlp"/);
  });

  it("keeps health open, without naming anything on the health routes", async () => {
    for (const route of publicRoutes) expect((await call("GET", route, null)).status).toBe(200);
    expect((await call("GET", "/v2/health/ready", null)).text).not.toMatch(/mlp/);
  });
});
