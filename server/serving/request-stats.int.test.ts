import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { buildMlp, seededValues } from "../../tests/helpers/onnx-models";
import { createModelServer } from "../../serve/server";
import { createDb, type Db } from "../db";
import type { OrgActor } from "../auth/roles";
import { createApiToken } from "../auth/tokens.service";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { InferenceEngine } from "./inference.service";
import { readBlob } from "./model-files";
import { estimatePercentileMs, latencyBuckets } from "./metrics";
import { RequestStatsRecorder } from "./request-stats.recorder";
import { endpointRequestStatsSchema } from "./request-stats.schemas";
import { getEndpointRequestStats } from "./request-stats.service";
import { addReadyVersion, deployOn, mlpSignature } from "../../tests/helpers/serving";

// Request statistics end to end: real requests through the model server, flushed to Postgres,
// read back as the endpoint page reads them.

let database: TestDatabase;
let db: Db;
let model: ReturnType<typeof createModelServer>;
let base: string;
let owner: OrgActor;
let token: string;
const blobs = createLocalBlobStore({ root: fs.mkdtempSync(path.join(os.tmpdir(), "gantry-stats-")) });

async function deployMlp(actor: OrgActor, name: string) {
  const { versionId } = await addReadyVersion(db, blobs, { actor, bytes: buildMlp(), signature: mlpSignature });
  return deployOn(db, model, { actor, name, versionId });
}

const infer = (name: string, data: unknown) =>
  fetch(`${base}/v2/models/${name}/infer`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data }] }) });

beforeAll(async () => {
  database = await createTestDatabase("request_stats");
  db = createDb(database.url, 4);
  owner = (await createOrgWithMember(db, "owner")).actor;
  token = (await createApiToken(db, { actor: owner, input: { name: "stats", scopes: ["read"] } })).token;
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 });
  // The timer never fires during the test: flushes happen when the test says.
  model = createModelServer({ db, engine, pollMs: 60_000, statsFlushMs: 600_000 });
  base = `http://127.0.0.1:${(await model.listen(0, "127.0.0.1")).port}`;
});

afterAll(async () => {
  await model?.close();
  await db?.$disconnect();
  await database?.drop();
});

describe("endpoint request statistics", () => {
  it("counts requests and errors per minute, written by the model server, with percentiles from the histogram", async () => {
    const endpoint = await deployMlp(owner, "stats");
    const viewer = await addMember(db, owner.orgId, "viewer");
    const empty = await getEndpointRequestStats(db, { actor: viewer, endpointId: endpoint.id, minutes: 5 });
    expect(empty.minutes).toHaveLength(5);
    expect(empty.totals).toEqual({ requests: 0, errors: 0, p50Ms: null, p95Ms: null });
    expect(empty.lastRequestAt).toBeNull();

    for (let i = 0; i < 3; i++) expect((await infer("stats", seededValues(4, i))).status).toBe(200);
    const sentAt = Date.now();
    expect((await infer("stats", [1, 2])).status).toBe(400);
    const answeredAt = Date.now();
    // Counted in memory only, until the flush.
    expect((await getEndpointRequestStats(db, { actor: viewer, endpointId: endpoint.id })).totals.requests).toBe(0);
    await model.flushStats();

    const stats = endpointRequestStatsSchema.parse(await getEndpointRequestStats(db, { actor: viewer, endpointId: endpoint.id }));
    expect(stats.minutes).toHaveLength(60);
    expect(stats.totals.requests).toBe(4);
    expect(stats.totals.errors).toBe(1);
    expect(stats.totals.p50Ms).toBeGreaterThan(0);
    expect(stats.totals.p95Ms).toBeGreaterThanOrEqual(stats.totals.p50Ms!);
    const current = stats.minutes.at(-1)!;
    // The requests may straddle a minute boundary; the two last minutes hold them all.
    const recent = stats.minutes.slice(-2).reduce((n, m) => n + m.requests, 0);
    expect(recent).toBe(4);
    expect(current.at.getTime() % 60_000).toBe(0);
    expect(Date.now() - current.at.getTime()).toBeLessThan(60_000);
    // The time the last request was answered, not the start of its minute.
    expect(stats.lastRequestAt!.getTime()).toBeGreaterThanOrEqual(sentAt);
    expect(stats.lastRequestAt!.getTime()).toBeLessThanOrEqual(answeredAt);
    expect(stats.minutes.slice(0, -2).every((m) => m.requests === 0 && m.p50Ms === null)).toBe(true);

    // Flushing again adds nothing that was already written.
    await model.flushStats();
    expect((await getEndpointRequestStats(db, { actor: viewer, endpointId: endpoint.id })).totals.requests).toBe(4);
  });

  it("adds the counts of several model-server processes into the same minute", async () => {
    const endpoint = await deployMlp(owner, "summed");
    // Both in one minute, the later one in the process that writes first.
    const now = Date.now();
    const at = now - (now % 60_000) + 10_000;
    const a = new RequestStatsRecorder(db);
    const b = new RequestStatsRecorder(db);
    a.record(endpoint.id, "success", 0.002, at);
    a.record(endpoint.id, "timeout", 40, at);
    b.record(endpoint.id, "success", 0.002, at);
    b.record(endpoint.id, "success", 0.0004, at + 1_500);
    await b.flush();
    await a.flush();
    const minute = new Date(at - (at % 60_000));
    const row = await db.endpointRequestMinute.findUniqueOrThrow({ where: { endpointId_minute: { endpointId: endpoint.id, minute } } });
    expect(row.requests).toBe(4);
    expect(row.errors).toBe(1);
    expect(row.buckets).toHaveLength(latencyBuckets.length + 1);
    expect(row.buckets[0]).toBe(1); // 0.4 ms ≤ 0.5 ms
    expect(row.buckets[2]).toBe(2); // 2 ms ≤ 2.5 ms
    expect(row.buckets.at(-1)).toBe(1); // 40 s, above the top bound
    expect(row.sumSeconds).toBeCloseTo(40.0044, 6);
    expect(row.lastRequestAt).toEqual(new Date(at + 1_500));
    const stats = await getEndpointRequestStats(db, { actor: owner, endpointId: endpoint.id, minutes: 1 });
    expect(stats.totals).toMatchObject({ requests: 4, errors: 1 });
    expect(stats.totals.p95Ms).toBe(30_000);
    expect(stats.lastRequestAt).toEqual(new Date(at + 1_500));
  });

  it("takes the minute as the last request's time on rows written before the time itself was kept", async () => {
    const endpoint = await deployMlp(owner, "older");
    const now = Date.now();
    const minute = new Date(now - (now % 60_000) - 5 * 60_000);
    await db.endpointRequestMinute.create({ data: { endpointId: endpoint.id, minute, requests: 2, errors: 0, buckets: new Array<number>(latencyBuckets.length + 1).fill(0) } });
    expect((await getEndpointRequestStats(db, { actor: owner, endpointId: endpoint.id })).lastRequestAt).toEqual(minute);
  });

  it("counts each request in its own minute, whichever minute the one before it fell in, and after a flush", async () => {
    const endpoint = await deployMlp(owner, "minutes");
    const recorder = new RequestStatsRecorder(db);
    const now = Date.now();
    const first = now - (now % 60_000) - 3 * 60_000;
    const second = first + 60_000;
    recorder.record(endpoint.id, "success", 0.001, first + 59_999);
    recorder.record(endpoint.id, "success", 0.001, second);
    recorder.record(endpoint.id, "error", 0.001, first + 59_000); // a request that started earlier ends later
    recorder.record(endpoint.id, "success", 0.001, second + 1);
    await recorder.flush();
    recorder.record(endpoint.id, "success", 0.001, second + 2); // the minute's count was written: a new one starts
    await recorder.flush();
    const rows = await db.endpointRequestMinute.findMany({ where: { endpointId: endpoint.id }, orderBy: { minute: "asc" } });
    expect(rows.map((r) => [r.minute.getTime(), r.requests, r.errors])).toEqual([
      [first, 2, 1],
      [second, 3, 0],
    ]);
  });

  it("writes counts made while a flush is running with the next flush asked for", async () => {
    const endpoint = await deployMlp(owner, "overlap");
    const recorder = new RequestStatsRecorder(db);
    const at = Date.now();
    recorder.record(endpoint.id, "success", 0.001, at);
    const first = recorder.flush();
    recorder.record(endpoint.id, "success", 0.001, at);
    await Promise.all([first, recorder.flush()]);
    expect(recorder.isFlushing).toBe(false);
    const row = await db.endpointRequestMinute.findUniqueOrThrow({ where: { endpointId_minute: { endpointId: endpoint.id, minute: new Date(at - (at % 60_000)) } } });
    expect(row.requests).toBe(2);
  });

  it("drops the counts of an endpoint deleted before the flush, and keeps writing the others", async () => {
    const kept = await deployMlp(owner, "kept");
    const gone = await deployMlp(owner, "deleted");
    const recorder = new RequestStatsRecorder(db);
    recorder.record(kept.id, "success", 0.001);
    recorder.record(gone.id, "success", 0.001);
    await db.endpoint.delete({ where: { id: gone.id } });
    await recorder.flush();
    expect(await db.endpointRequestMinute.count({ where: { endpointId: kept.id } })).toBe(1);
    expect(await db.endpointRequestMinute.count({ where: { endpointId: gone.id } })).toBe(0);
  });

  it("shows an endpoint's statistics only inside its organisation", async () => {
    const endpoint = await deployMlp(owner, "private");
    const other = (await createOrgWithMember(db, "owner")).actor;
    await expect(getEndpointRequestStats(db, { actor: other, endpointId: endpoint.id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(getEndpointRequestStats(db, { actor: owner, endpointId: crypto.randomUUID() })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(getEndpointRequestStats(db, { actor: owner, endpointId: endpoint.id, minutes: 0 })).rejects.toMatchObject({ code: "BAD_REQUEST" });
  });

  it("estimates percentiles from bucket counts", () => {
    const counts = new Array<number>(latencyBuckets.length + 1).fill(0);
    expect(estimatePercentileMs(counts, 50)).toBeNull();
    counts[1] = 10; // all in (0.5 ms, 1 ms]
    expect(estimatePercentileMs(counts, 50)).toBeCloseTo(0.75, 6);
    expect(estimatePercentileMs(counts, 100)).toBeCloseTo(1, 6);
    counts[3] = 10; // and as many in (2.5 ms, 5 ms]
    expect(estimatePercentileMs(counts, 95)).toBeCloseTo(4.75, 6);
  });
});
