import crypto from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { GET as metricsRoute } from "../../app/api/metrics/route";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { sessionCookie } from "../../tests/helpers/session";
import { consumeRateLimit } from "../auth/rate-limit";
import { countEventStream, sseResponse } from "../api/sse";
import { countedBody } from "../api/upload-bytes";
import { createApiToken } from "../auth/tokens.service";
import { env } from "../env";
import { metricsFiguresSchema } from "./metrics.schemas";
import { collectMetrics, getHealthFigures, renderMetrics } from "./metrics.service";
import { processMetrics, ProcessMetrics, readProcessMetrics } from "./process-metrics";

// Read before env() is first parsed in this file's process.
const METRICS_TOKEN = crypto.randomBytes(32).toString("base64");
process.env.METRICS_TOKEN = METRICS_TOKEN;

const db = testDb();
afterAll(() => db.$disconnect());
const unique = () => crypto.randomBytes(4).toString("hex");
const settings = { WORKER_HEARTBEAT_MS: 5_000, WORKER_STALE_AFTER_MS: 30_000 };

/** A finished job of `kind` that ran `seconds`, ending now. */
async function finishedJob(orgId: string, kind: string, status: "succeeded" | "failed", seconds: number) {
  const finishedAt = new Date();
  await db.job.create({ data: { orgId, kind, status, startedAt: new Date(finishedAt.getTime() - seconds * 1000), finishedAt } });
}

describe("metrics read from Postgres", () => {
  it("counts jobs by kind and status, the queue by kind, and durations as a histogram with `le` buckets", async () => {
    const { orgId } = await createOrgWithMember(db);
    const kind = `test.metrics-${unique()}`;
    for (const s of [0.3, 2, 45]) await finishedJob(orgId, kind, "succeeded", s);
    // Exactly on a bound: counted in that bound's bucket.
    await finishedJob(orgId, kind, "failed", 1);
    await db.job.create({ data: { orgId, kind, status: "queued" } });
    await db.$executeRaw`SELECT graphile_worker.add_job(${kind}::text, '{}'::json, run_at => now() - interval '90 seconds')`;
    await db.$executeRaw`SELECT graphile_worker.add_job(${kind}::text, '{}'::json)`;
    await db.$executeRaw`SELECT graphile_worker.add_job(${kind}::text, '{}'::json, run_at => now() + interval '1 hour')`;

    const figures = await collectMetrics(db, settings);
    // What the health page is sent is checked against its schema.
    expect(() => metricsFiguresSchema.parse(figures)).not.toThrow();
    const ofKind = figures.jobs.filter((j) => j.kind === kind);
    expect(ofKind).toHaveLength(3);
    expect(ofKind).toEqual(expect.arrayContaining([{ kind, status: "queued", count: 1 }, { kind, status: "succeeded", count: 3 }, { kind, status: "failed", count: 1 }]));
    const queue = figures.queue.find((q) => q.kind === kind)!;
    expect(queue).toMatchObject({ waiting: 2, scheduled: 1, running: 0, failed: 0 });
    expect(queue.oldestWaitingSeconds).toBeGreaterThanOrEqual(89);
    // The catalog's kinds are there even when idle.
    expect(figures.queue.map((q) => q.kind)).toContain("system.selftest");
    const succeeded = figures.durations.series.find((s) => s.kind === kind && s.status === "succeeded")!;
    expect(succeeded.counts.reduce((a, b) => a + b)).toBe(3);
    expect(succeeded.sum).toBeCloseTo(47.3, 1);
    expect(figures.throughput.filter((t) => t.kind === kind).reduce((n, t) => n + t.count, 0)).toBe(4);

    const text = renderMetrics(figures);
    const lines = text.split("\n");
    const k = `kind="${kind}"`;
    expect(lines).toEqual(expect.arrayContaining([
      "# TYPE gantry_job_duration_seconds histogram",
      `gantry_job_duration_seconds_bucket{${k},status="succeeded",le="0.1"} 0`,
      `gantry_job_duration_seconds_bucket{${k},status="succeeded",le="0.5"} 1`,
      `gantry_job_duration_seconds_bucket{${k},status="succeeded",le="2.5"} 2`,
      `gantry_job_duration_seconds_bucket{${k},status="succeeded",le="60"} 3`,
      `gantry_job_duration_seconds_bucket{${k},status="succeeded",le="+Inf"} 3`,
      `gantry_job_duration_seconds_count{${k},status="succeeded"} 3`,
      `gantry_job_duration_seconds_bucket{${k},status="failed",le="0.5"} 0`,
      `gantry_job_duration_seconds_bucket{${k},status="failed",le="1"} 1`,
      `gantry_jobs{${k},status="succeeded"} 3`,
      `gantry_queue_jobs{${k},state="waiting"} 2`,
      `gantry_queue_jobs{${k},state="scheduled"} 1`,
      'gantry_worker_handoff_window_seconds 36',
    ]));
    // Every family is announced once, before its samples.
    for (const name of ["gantry_jobs", "gantry_queue_jobs", "gantry_queue_oldest_waiting_seconds", "gantry_workers", "gantry_upload_bytes_total", "gantry_rate_limit_refusals_total", "gantry_sse_subscribers"]) {
      expect(lines.filter((l) => l.startsWith(`# TYPE ${name} `))).toHaveLength(1);
    }
  });

  it("shows each live process's own figures with a process label, and drops a process that stopped writing", async () => {
    const web = new ProcessMetrics();
    const worker = new ProcessMetrics();
    const webName = `web:test-${unique()}`;
    const workerName = `worker:test-${unique()}`;
    web.start({ db: () => db, role: "web", name: webName });
    worker.start({ db: () => db, role: "worker", name: workerName });
    web.add("gantry_upload_bytes_total", { kind: "edge" }, 100);
    web.add("gantry_upload_bytes_total", { kind: "edge" }, 150);
    web.add("gantry_sse_subscribers", { stream: "job" }, 2);
    worker.add("gantry_worker_jobs_handed_on_total", {}, 1);
    await Promise.all([web.flush(), worker.flush()]);
    web.stop();
    worker.stop();

    const text = renderMetrics(await collectMetrics(db, settings));
    expect(text).toContain(`gantry_upload_bytes_total{process="${webName}",kind="edge"} 250`);
    expect(text).toContain(`gantry_sse_subscribers{process="${webName}",stream="job"} 2`);
    expect(text).toContain(`gantry_worker_jobs_handed_on_total{process="${workerName}"} 1`);

    await db.$executeRaw`UPDATE "ProcessMetric" SET "updatedAt" = "updatedAt" - interval '1 minute' WHERE "process" = ${workerName}`;
    const live = await readProcessMetrics(db);
    expect(live.some((r) => r.process === webName)).toBe(true);
    expect(live.some((r) => r.process === workerName)).toBe(false);
  });

  it("counts upload bytes as a body is read, open event streams until they end, and rate-limit refusals", async () => {
    const metrics = processMetrics();
    const before = metrics.value("gantry_upload_bytes_total", { kind: "model" });
    const body = countedBody(new Blob([new Uint8Array(1000), new Uint8Array(234)]).stream(), "model")!;
    await new Response(body).arrayBuffer();
    expect(metrics.value("gantry_upload_bytes_total", { kind: "model" }) - before).toBe(1234);

    const streams = () => metrics.value("gantry_sse_subscribers", { stream: "job" });
    const open = streams();
    const client = new AbortController();
    const events = (async function* () {
      await new Promise((resolve) => client.signal.addEventListener("abort", resolve));
    })();
    const response = sseResponse(new Request("http://portal.test/api/jobs/x/events", { signal: client.signal }), events, () => "1", new AbortController());
    expect(streams()).toBe(open + 1);
    client.abort();
    await response.body?.cancel().catch(() => {});
    expect(streams()).toBe(open);

    // tRPC's subscriptions answer with event streams of their own, counted until they end.
    const trpcStreams = () => metrics.value("gantry_sse_subscribers", { stream: "jobs.onOrgEvents" });
    const counted = countEventStream(new Response(new ReadableStream({ start: () => {} }), { headers: { "content-type": "text/event-stream" } }), "jobs.onOrgEvents");
    expect(trpcStreams()).toBe(1);
    await counted.body!.cancel();
    expect(trpcStreams()).toBe(0);
    countEventStream(Response.json({}), "jobs.list");
    expect(metrics.value("gantry_sse_subscribers", { stream: "jobs.list" })).toBe(0);

    const rule = { name: `test_${unique()}`, what: "tests", limit: 1, windowMs: 60_000 };
    await consumeRateLimit(db, `test:${rule.name}`, rule);
    await expect(consumeRateLimit(db, `test:${rule.name}`, rule)).rejects.toThrow(/Too many tests/);
    expect(metrics.value("gantry_rate_limit_refusals_total", { limit: rule.name })).toBe(1);
  });
});

describe("GET /api/metrics", () => {
  const get = (headers: Record<string, string> = {}) => metricsRoute(new Request("http://portal.test/api/metrics", { headers }));

  it("answers a scraper holding METRICS_TOKEN with the text format", async () => {
    expect(env().METRICS_TOKEN).toBe(METRICS_TOKEN);
    const response = await get({ authorization: `Bearer ${METRICS_TOKEN}` });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await response.text();
    expect(text).toMatch(/^# HELP gantry_jobs /);
    expect(text).toContain("# TYPE gantry_job_duration_seconds histogram");
  });

  it("answers a signed-in instance admin, and refuses everyone else with a reason", async () => {
    const { orgId, owner } = await createOrgWithMember(db);
    const admin = await addMember(db, orgId, "viewer");
    await db.user.update({ where: { id: admin.userId }, data: { isInstanceAdmin: true } });
    expect((await get({ cookie: await sessionCookie(db, admin.userId) })).status).toBe(200);

    const anonymous = await get();
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json()).error.message).toMatch(/Authorization: Bearer <METRICS_TOKEN>`, or sign in as an instance admin/);

    const wrong = await get({ authorization: `Bearer ${METRICS_TOKEN.slice(0, -2)}xx` });
    expect(wrong.status).toBe(401);
    expect((await wrong.json()).error.message).toMatch(/neither the metrics token nor a valid API token/);

    // An organisation's owner is not an instance admin, by session or by API token.
    const member = await get({ cookie: await sessionCookie(db, owner.userId) });
    expect(member.status).toBe(403);
    expect((await member.json()).error.message).toMatch(/for instance admins .* and for scrapers holding METRICS_TOKEN/);
    const { token } = await createApiToken(db, { actor: owner, input: { name: `t-${unique()}`, scopes: ["read"] } });
    expect((await get({ authorization: `Bearer ${token}` })).status).toBe(403);

    await expect(getHealthFigures(db, { userId: owner.userId, settings: { ...settings, INSTANCE_ADMINS: [] } })).rejects.toMatchObject({ code: "FORBIDDEN" });
    expect((await getHealthFigures(db, { userId: admin.userId, settings: { ...settings, INSTANCE_ADMINS: [] } })).workers).toBeDefined();
  });
});
