import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { buildMlp, runMlpInJs, seededValues } from "../../tests/helpers/onnx-models";
import { createModelServer } from "../../serve/server";
import { createDb, type Db } from "../db";
import type { OrgActor } from "../auth/roles";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { InferenceEngine } from "./inference.service";
import { readBlob } from "./model-files";
import { mintInternalToken, verifyInternalToken } from "./internal-token";
import { getEndpointRequestStats } from "./request-stats.service";
import { serveInternalUrl, tryEndpoint } from "./try-it.service";
import { addReadyVersion, deployOn, mlpSignature } from "../../tests/helpers/serving";

// The "try it" form's path: the portal signs a short-lived token and calls the real model
// server over HTTP; the model server lets it in as a viewer of that organisation only.

let database: TestDatabase;
let db: Db;
let model: ReturnType<typeof createModelServer>;
let serveUrl: string;
let owner: OrgActor;
let endpointId: string;
const secret = crypto.randomBytes(32).toString("base64url");
const blobs = createLocalBlobStore({ root: fs.mkdtempSync(path.join(os.tmpdir(), "gantry-try-")) });

async function deployMlp(actor: OrgActor, name: string) {
  const { versionId } = await addReadyVersion(db, blobs, { actor, bytes: buildMlp(), signature: mlpSignature });
  return deployOn(db, model, { actor, name, versionId });
}

const predict = (bearer: string, name = "mlp") =>
  fetch(`${serveUrl}/predict/${name}`, { method: "POST", headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" }, body: JSON.stringify({ inputs: { x: [[0, 0, 0, 0]] } }) });

beforeAll(async () => {
  database = await createTestDatabase("try_it");
  db = createDb(database.url, 4);
  owner = (await createOrgWithMember(db, "owner")).actor;
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 });
  model = createModelServer({ db, engine, internalSecret: secret, pollMs: 60_000, statsFlushMs: 600_000 });
  serveUrl = `http://127.0.0.1:${(await model.listen(0, "127.0.0.1")).port}`;
  endpointId = (await deployMlp(owner, "mlp")).id;
});

afterAll(async () => {
  await model?.close();
  await db?.$disconnect();
  await database?.drop();
});

describe("try it", () => {
  it("calls the real model server as a viewer and returns its answer, counted like any request", async () => {
    const viewer = await addMember(db, owner.orgId, "viewer");
    const x = [seededValues(4, 3), seededValues(4, 4)];
    const sentAt = Date.now();
    const result = await tryEndpoint(db, { actor: viewer, endpointId, inputs: { x }, secret, serveUrl });
    const answeredAt = Date.now();
    expect(result.status).toBe(200);
    // Written before it was answered (no flush asked for), for the page that reads its statistics
    // again as Try it returns; its time is the request's own, not the start of its minute.
    const after = await getEndpointRequestStats(db, { actor: viewer, endpointId });
    expect(after.totals).toMatchObject({ requests: 1, errors: 0 });
    expect(after.lastRequestAt!.getTime()).toBeGreaterThanOrEqual(sentAt);
    expect(after.lastRequestAt!.getTime()).toBeLessThanOrEqual(answeredAt);
    expect(result.ms).toBeGreaterThan(0);
    const y = (result.body as { outputs: { y: number[][] } }).outputs.y;
    const expected = runMlpInJs(x);
    y.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - expected[i][j])).toBeLessThan(1e-5)));

    // The model server's own refusals come back as they are, for the form to show.
    const wrong = await tryEndpoint(db, { actor: viewer, endpointId, inputs: { q: [[1]] }, secret, serveUrl });
    expect(wrong.status).toBe(400);
    expect((wrong.body as { error: string }).error).toMatch(/"q" is not an input of endpoint mlp/);

    const metrics = await (await fetch(`${serveUrl}/metrics`, { headers: { authorization: `Bearer ${mintInternalToken(secret, viewer)}` } })).text();
    expect(metrics).toMatch(new RegExp(`gantry_serve_requests_total\\{org="${owner.orgId}",endpoint="mlp",outcome="success"\\} [1-9]`));
    // A refused one is written before its answer too.
    expect((await getEndpointRequestStats(db, { actor: viewer, endpointId })).totals).toMatchObject({ requests: 2, errors: 1 });
  });

  it("finds endpoints only in the actor's organisation", async () => {
    const other = (await createOrgWithMember(db, "owner")).actor;
    await expect(tryEndpoint(db, { actor: other, endpointId, inputs: { x: [[0, 0, 0, 0]] }, secret, serveUrl })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("lets a good portal token in, and refuses forged, tampered, expired and long-lived ones", async () => {
    expect((await predict(mintInternalToken(secret, owner))).status).toBe(200);

    const forged = mintInternalToken(crypto.randomBytes(32).toString("base64url"), owner);
    const refused = await predict(forged);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: string }).error).toMatch(/portal token is invalid or has expired/);

    const good = mintInternalToken(secret, owner);
    const [payload, sig] = good.slice(4).split(".");
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    const otherUser = Buffer.from(JSON.stringify({ ...claims, o: crypto.randomUUID() })).toString("base64url");
    expect((await predict(`gti_${otherUser}.${sig}`)).status).toBe(401);

    expect((await predict(mintInternalToken(secret, owner, { now: Date.now() - 31_000 }))).status).toBe(401);
    expect((await predict(mintInternalToken(secret, owner, { ttlMs: 10 * 60_000 }))).status).toBe(401);
    expect(verifyInternalToken(secret, mintInternalToken(secret, owner, { ttlMs: 60_000 }))).toMatchObject({ orgId: owner.orgId, userId: owner.userId, role: "viewer" });
  });

  it("keeps a genuine token of another organisation to that organisation's endpoints", async () => {
    const other = (await createOrgWithMember(db, "owner")).actor;
    const res = await predict(mintInternalToken(secret, other));
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toMatch(/no endpoint named mlp/);
  });

  it("signs with a key of its own, not the session secret", () => {
    const token = mintInternalToken(secret, owner);
    const [payload, sig] = token.slice(4).split(".");
    expect(sig).not.toBe(crypto.createHmac("sha256", secret).update(`gti.${payload}`).digest("base64url"));
    expect(sig).not.toBe(crypto.createHmac("sha256", secret).update(payload).digest("base64url"));
  });

  it("reaches the model server on loopback when it listens on every address", () => {
    expect(serveInternalUrl({ SERVE_HOST: "0.0.0.0", SERVE_PORT: 8500 })).toBe("http://127.0.0.1:8500");
    expect(serveInternalUrl({ SERVE_HOST: "::", SERVE_PORT: 8500 })).toBe("http://127.0.0.1:8500");
    expect(serveInternalUrl({ SERVE_HOST: "127.0.0.1", SERVE_PORT: 9000 })).toBe("http://127.0.0.1:9000");
    expect(serveInternalUrl({ SERVE_HOST: "::1", SERVE_PORT: 9000 })).toBe("http://[::1]:9000");
    expect(serveInternalUrl({ SERVE_HOST: "models.internal", SERVE_PORT: 9000 })).toBe("http://models.internal:9000");
  });

  it("says so when the model server does not answer", async () => {
    await expect(tryEndpoint(db, { actor: owner, endpointId, inputs: { x: [[0, 0, 0, 0]] }, secret, serveUrl: "http://127.0.0.1:1" })).rejects.toThrow(/did not answer.*running/);
  });
});
