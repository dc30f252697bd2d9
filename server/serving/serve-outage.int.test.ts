import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createModelServer } from "../../serve/server";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { buildMlp } from "../../tests/helpers/onnx-models";
import { startPgProxy, type PgProxy } from "../../tests/helpers/pg-proxy";
import { addReadyVersion, deployOn, mlpSignature } from "../../tests/helpers/serving";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createApiToken } from "../auth/tokens.service";
import { createDb, type Db } from "../db";
import { RealtimeHub } from "../jobs/realtime";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { InferenceEngine } from "./inference.service";
import { readBlob } from "./model-files";

// The model server while its database is down: real onnxruntime, real HTTP, and the real
// Postgres behind a relay the test cuts (every connection dropped, new ones refused) and
// restores, as a crash and restart of the database would.

let database: TestDatabase;
let db: Db;
let proxy: PgProxy;
let viaProxy: Db;
let hub: RealtimeHub;
let model: ReturnType<typeof createModelServer>;
let base: string;
let token: string;
let unusedToken: string;
const lines: string[] = [];
const blobs = createLocalBlobStore({ root: fs.mkdtempSync(path.join(os.tmpdir(), "gantry-serve-outage-")) });

beforeAll(async () => {
  database = await createTestDatabase("serveoutage");
  db = createDb(database.url, 3);
  proxy = await startPgProxy(database.url);
  viaProxy = createDb(proxy.urlFor(database.url), 4);
  const { actor } = await createOrgWithMember(db, "owner");
  token = (await createApiToken(db, { actor, input: { name: "robot", scopes: ["read"] } })).token;
  unusedToken = (await createApiToken(db, { actor, input: { name: "spare", scopes: ["read"] } })).token;
  // As serve/index.ts builds it: its own LISTEN connection for access announcements.
  hub = new RealtimeHub({ url: proxy.urlFor(database.url), db: viaProxy, jobEvents: false });
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 });
  model = createModelServer({ db: viaProxy, engine, pollMs: 60_000, statsFlushMs: 60_000, accessEvents: hub, log: (m) => lines.push(m) });
  base = `http://127.0.0.1:${(await model.listen(0, "127.0.0.1")).port}`;
  const version = await addReadyVersion(db, blobs, { actor, bytes: buildMlp(), signature: mlpSignature });
  await deployOn(db, model, { actor, name: "mlp", versionId: version.versionId });
  await model.syncNow();
}, 60_000);
afterAll(async () => {
  await model?.close();
  await hub?.stop();
  await viaProxy?.$disconnect();
  await proxy?.close();
  await db?.$disconnect();
  await database?.drop();
});
afterEach(() => vi.restoreAllMocks());

const infer = (bearer: string) =>
  fetch(`${base}/v2/models/mlp/infer`, {
    method: "POST",
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
    body: JSON.stringify({ inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [0.1, 0.2, 0.3, 0.4] }] }),
  }).then(async (res) => ({ status: res.status, body: (await res.json()) as { error?: string; outputs?: unknown[] } }));

describe("the model server with its database down", () => {
  it("keeps serving its loaded models to tokens it knows, says so once, and writes the statistics once it is back", async () => {
    expect((await infer(token)).status).toBe(200);
    const errors = vi.spyOn(console, "error");

    await proxy.cut();
    const during = await Promise.all(Array.from({ length: 20 }, () => infer(token)));
    expect(during.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(during[0].body.outputs).toHaveLength(1);
    // A token it never checked cannot be checked now: 503, worth trying again, with no stack.
    const unknown = await infer(unusedToken);
    expect(unknown).toEqual({ status: 503, body: { error: "The model server cannot reach its database to check this API token; try again in a moment" } });
    for (let i = 0; i < 3; i++) await model.syncNow(); // endpoint polls fail meanwhile
    await model.flushStats();
    await model.flushStats();
    expect(errors).not.toHaveBeenCalled();
    const outageLines = lines.filter((l) => /cannot reach the database|request statistics/.test(l));
    expect(outageLines).toHaveLength(2);
    expect(outageLines[0]).toMatch(/^Model server: cannot reach the database \(.+\); carrying on and retrying/);
    expect(outageLines[1]).toMatch(/^Could not write request statistics; keeping up to an hour of them/);

    await proxy.restore();
    await model.syncNow();
    await model.flushStats();
    expect(lines.filter((l) => /reachable again|written again/.test(l))).toEqual([
      expect.stringMatching(/^Model server: the database is reachable again after \d+ s/),
      expect.stringMatching(/^Request statistics are written again/),
    ]);
    // Every inference of the outage was counted (the refused one never reached the model).
    const [{ requests }] = await db.$queryRaw<{ requests: bigint }[]>`SELECT sum("requests") AS requests FROM "EndpointRequestMinute"`;
    expect(Number(requests)).toBe(21);
    expect((await infer(unusedToken)).status).toBe(200);
  }, 60_000);
});
