import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { addMember, createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { buildMlp } from "../../tests/helpers/onnx-models";
import { addReadyVersion, deployOn, mlpSignature } from "../../tests/helpers/serving";
import { createModelServer } from "../../serve/server";
import { onAccessChange, type AccessChange } from "../auth/access-changes";
import { createApiToken, revokeApiToken } from "../auth/tokens.service";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { RealtimeHub } from "../jobs/realtime";
import { removeMember } from "../orgs/orgs.service";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { InferenceEngine } from "./inference.service";
import { readBlob } from "./model-files";

// The model server keeps token lookups for a while so a busy client costs no database round
// trip per request; a revoked token, or one whose owner was removed, must still be refused at
// once. The cache here would keep a token for a minute: only the database's announcement can
// make the next request fail.

const blobs = createLocalBlobStore({ root: fs.mkdtempSync(path.join(os.tmpdir(), "gantry-serve-revoke-")) });
let database: TestDatabase;
let db: Db;
let accessEvents: RealtimeHub;
let model: ReturnType<typeof createModelServer>;
let base: string;
let owner: OrgActor;

beforeAll(async () => {
  // A database of its own: the model server loads every endpoint it finds.
  database = await createTestDatabase("serve_revoke");
  db = createDb(database.url, 4);
  accessEvents = new RealtimeHub({ url: database.url, db, jobEvents: false });
  owner = (await createOrgWithMember(db, "owner")).actor;
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 });
  model = createModelServer({ db, engine, accessEvents, tokenCacheMs: 60_000, pollMs: 60_000, statsFlushMs: 600_000 });
  base = `http://127.0.0.1:${(await model.listen(0, "127.0.0.1")).port}`;
  const { versionId } = await addReadyVersion(db, blobs, { actor: owner, bytes: buildMlp(), signature: mlpSignature });
  await deployOn(db, model, { actor: owner, name: "mlp", versionId });
  await accessEvents.ensureConnected();
});

afterAll(async () => {
  await model?.close();
  await accessEvents?.stop();
  await db?.$disconnect();
  await database?.drop();
});

const infer = (token: string) =>
  fetch(`${base}/v2/models/mlp/infer`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [0, 0, 0, 0] }] }),
  }).then((res) => res.status);

/** Resolves when the model server has heard of the next change to this person's access (it listens first). */
function nextChangeFor(userId: string): Promise<AccessChange> {
  return new Promise((resolve) => {
    const stop = onAccessChange(accessEvents, (change) => {
      if (change?.userId !== userId) return;
      stop();
      resolve(change);
    });
  });
}

describe("model server token cache", () => {
  it("refuses a revoked token on the very next request", async () => {
    const viewer = await addMember(db, owner.orgId, "viewer");
    const { id, token } = await createApiToken(db, { actor: viewer, input: { name: "client", scopes: ["read"] } });
    expect(await infer(token)).toBe(200);
    await db.apiToken.update({ where: { id }, data: { lastUsedAt: null } });
    expect(await infer(token)).toBe(200);
    // Served from the cache: the second request did not reach the database.
    expect((await db.apiToken.findUniqueOrThrow({ where: { id } })).lastUsedAt).toBeNull();

    const heard = nextChangeFor(viewer.userId);
    await revokeApiToken(db, { actor: viewer, tokenId: id });
    expect(await heard).toMatchObject({ tokenId: id });
    expect(await infer(token)).toBe(401);
  });

  it("refuses a removed member's token on the very next request", async () => {
    const operator = await addMember(db, owner.orgId, "operator");
    const { token } = await createApiToken(db, { actor: operator, input: { name: "robot", scopes: ["read"] } });
    expect(await infer(token)).toBe(200);
    const heard = nextChangeFor(operator.userId);
    await removeMember(db, { actor: owner, userId: operator.userId });
    await heard;
    expect(await infer(token)).toBe(401);
  });

  it("forgets every cached token when its connection was lost, since announcements may have been missed", async () => {
    const viewer = await addMember(db, owner.orgId, "viewer");
    const { id, token } = await createApiToken(db, { actor: viewer, input: { name: "client", scopes: ["read"] } });
    expect(await infer(token)).toBe(200);
    await db.$executeRaw`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN gantry_access%' AND pid <> pg_backend_pid()`;
    await waitFor(async () => !accessEvents.isListening, { what: "the connection to drop" });
    // Revoked while nobody listens: the announcement is lost.
    await db.apiToken.update({ where: { id }, data: { revokedAt: new Date() } });
    await waitFor(async () => accessEvents.isListening, { what: "the connection to come back" });
    expect(await infer(token)).toBe(401);
  });

  it("asks the database on every request while it cannot hear of revocations", async () => {
    const viewer = await addMember(db, owner.orgId, "viewer");
    const unheard = createModelServer({ db, engine: new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 }), tokenCacheMs: 60_000, pollMs: 60_000, statsFlushMs: 600_000 });
    const port = (await unheard.listen(0, "127.0.0.1")).port;
    try {
      const { id, token } = await createApiToken(db, { actor: viewer, input: { name: "client", scopes: ["read"] } });
      const ready = () => fetch(`http://127.0.0.1:${port}/v2/models/mlp/ready`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
      expect(await ready()).not.toBe(401);
      await db.apiToken.update({ where: { id }, data: { revokedAt: new Date() } });
      expect(await ready()).toBe(401);
    } finally {
      await unheard.close();
    }
  });
});
