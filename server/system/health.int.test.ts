import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { checkHealth } from "./health.service";
import { recordHeartbeat, releaseDeadWorkers } from "./heartbeat.service";
import { OutageLog } from "../db/availability";
import { startPgProxy } from "../../tests/helpers/pg-proxy";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { startSelftest } from "./selftest.service";
import { runJob } from "../jobs/run";
import { selftestJob } from "../jobs/catalog";
import { CancellationRegistry } from "../jobs/cancellation";

// A database of its own: other test files run workers that beat in the shared one.
let database: TestDatabase;
let db: Db;
beforeAll(async () => {
  database = await createTestDatabase("health");
  db = createDb(database.url, 2);
});
afterAll(async () => {
  await db.$disconnect();
  await database.drop();
});

describe("health", () => {
  it("is degraded with no worker, ok while one beats, degraded again once it goes quiet", async () => {
    expect(await checkHealth(db, { staleAfterMs: 30_000 })).toMatchObject({ status: "degraded", database: { ok: true }, worker: { ok: false, lastSeen: null, workers: 0 } });
    await recordHeartbeat(db, ["worker-a", "worker-b"]);
    const ok = await checkHealth(db, { staleAfterMs: 30_000 });
    expect(ok).toMatchObject({ status: "ok", worker: { ok: true, workers: 2 }, queue: { depth: 0, running: 0 } });
    // Their last beats, a minute ago.
    await db.$executeRaw`UPDATE "WorkerHeartbeat" SET "lastSeen" = "lastSeen" - interval '1 minute'`;
    expect(await checkHealth(db, { staleAfterMs: 30_000 })).toMatchObject({ status: "degraded", worker: { ok: false } });
  });

  it("releases the jobs of workers that stopped beating, and only those", async () => {
    await db.$executeRaw`DELETE FROM "WorkerHeartbeat"`;
    await recordHeartbeat(db, ["dead-worker"]);
    await db.$executeRaw`UPDATE "WorkerHeartbeat" SET "lastSeen" = "lastSeen" - interval '1 hour' WHERE id = 'dead-worker'`;
    await recordHeartbeat(db, ["live-worker"]);
    await db.$executeRaw`SELECT graphile_worker.add_job('system.selftest', '{}'::json)`;
    await db.$executeRaw`UPDATE graphile_worker._private_jobs SET locked_by = 'dead-worker', locked_at = now()`;
    expect((await releaseDeadWorkers(db, 30_000)).map((w) => w.id)).toEqual(["dead-worker"]);
    const [job] = await db.$queryRaw<{ locked_by: string | null }[]>`SELECT locked_by FROM graphile_worker._private_jobs`;
    expect(job.locked_by).toBeNull();
    expect((await db.workerHeartbeat.findMany()).map((w) => w.id)).toEqual(["live-worker"]);
  });

  it("reports a database it cannot reach without passing on the driver's words", async () => {
    const unreachable = createDb("postgresql://nobody:wrong@127.0.0.1:1/none", 1);
    const health = await checkHealth(unreachable, { staleAfterMs: 1_000 });
    expect(health).toMatchObject({ status: "degraded", database: { ok: false, error: "Gantry cannot reach its database; the server log says why" } });
    await unreachable.$disconnect();
  });

  it("says once that the database went away and once that it is back, however often it is asked, and recovers by itself", async () => {
    const proxy = await startPgProxy(database.url);
    const viaProxy = createDb(proxy.urlFor(database.url), 2);
    const lines: string[] = [];
    const outage = new OutageLog("Health check", (m) => lines.push(m));
    try {
      await recordHeartbeat(db, ["worker-outage"]);
      expect(await checkHealth(viaProxy, { staleAfterMs: 60_000, outage })).toMatchObject({ database: { ok: true } });
      await proxy.cut();
      for (let i = 0; i < 5; i++) expect(await checkHealth(viaProxy, { staleAfterMs: 60_000, outage })).toMatchObject({ status: "degraded", database: { ok: false } });
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^Health check: cannot reach the database \(.+\); carrying on and retrying/);
      await proxy.restore();
      expect(await checkHealth(viaProxy, { staleAfterMs: 60_000, outage })).toMatchObject({ status: "ok", database: { ok: true } });
      expect(await checkHealth(viaProxy, { staleAfterMs: 60_000, outage })).toMatchObject({ status: "ok" });
      expect(lines).toHaveLength(2);
      expect(lines[1]).toMatch(/^Health check: the database is reachable again after \d+ s \(5 failed attempts meanwhile\)$/);
    } finally {
      await viaProxy.$disconnect();
      await proxy.close();
      await db.$executeRaw`DELETE FROM "WorkerHeartbeat"`;
    }
  });
});

describe("health of the jobs", () => {
  // Every test here reads the whole queue: they run one after another on this file's database.
  const reset = async () => {
    await db.$executeRaw`DELETE FROM graphile_worker._private_jobs`;
    await db.$executeRaw`DELETE FROM "Job"`;
    await db.$executeRaw`DELETE FROM "WorkerHeartbeat"`;
    await recordHeartbeat(db, ["live-worker"]);
  };
  const age = (jobId: string, seconds: number) => Promise.all([
    db.$executeRaw`UPDATE graphile_worker._private_jobs SET run_at = now() - make_interval(secs => ${seconds}) WHERE payload->>'jobId' = ${jobId}`,
    db.$executeRaw`UPDATE "JobEvent" SET "at" = "at" - make_interval(secs => ${seconds}) WHERE "jobId" = ${jobId}::uuid`,
  ]);

  it("is ok while a live worker keeps up, and says so when a job has waited too long for one", async () => {
    await reset();
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await startSelftest(db, { actor, input: { steps: 1, stepMs: 0 } });
    expect(await checkHealth(db, { staleAfterMs: 60_000 })).toMatchObject({ status: "ok", jobs: { ok: true, overdue: 0, silent: 0, stranded: 0, problems: [] } });
    // Queued 11 minutes ago, free to run, and no worker has taken it.
    await age(jobId, 11 * 60);
    const health = await checkHealth(db, { staleAfterMs: 60_000 });
    expect(health).toMatchObject({ status: "degraded", worker: { ok: true }, queue: { depth: 1 }, jobs: { ok: false, overdue: 1, silent: 0, stranded: 0 } });
    expect(health.jobs.problems).toEqual(["1 job has waited more than 10 min for a worker to start it (the oldest: system.selftest): the workers are all busy, or stuck — restart them or add more"]);
  });

  it("does not count a job waiting behind another of its queue, nor one set to run later", async () => {
    await reset();
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await startSelftest(db, { actor, input: { steps: 1, stepMs: 0 } });
    await age(jobId, 11 * 60);
    await db.$executeRaw`SELECT graphile_worker.add_job('system.selftest', '{}'::json, queue_name => 'device-a', run_at => now() - interval '1 hour')`;
    await db.$executeRaw`UPDATE graphile_worker._private_job_queues SET locked_by = 'live-worker', locked_at = now() WHERE queue_name = 'device-a'`;
    await db.$executeRaw`SELECT graphile_worker.add_job('system.selftest', '{}'::json, run_at => now() + interval '1 hour')`;
    expect(await checkHealth(db, { staleAfterMs: 60_000 })).toMatchObject({ jobs: { overdue: 1 } });
  });

  it("says so when a running job has reported nothing for a long time", async () => {
    await reset();
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await startSelftest(db, { actor, input: { steps: 1, stepMs: 0 } });
    // Taken by a worker that then reported nothing for 31 minutes.
    await db.$executeRaw`UPDATE graphile_worker._private_jobs SET locked_by = 'live-worker', locked_at = now(), attempts = 1 WHERE payload->>'jobId' = ${jobId}`;
    await db.job.update({ where: { id: jobId }, data: { status: "running" } });
    await age(jobId, 31 * 60);
    const health = await checkHealth(db, { staleAfterMs: 60_000 });
    expect(health).toMatchObject({ status: "degraded", jobs: { ok: false, overdue: 0, silent: 1, stranded: 0 } });
    expect(health.jobs.problems).toEqual(["1 running job has reported nothing for more than 30 min (the oldest: system.selftest): its worker may be stuck — cancel and retry it, or restart the worker"]);
  });

  it("says so when a job is queued or running but nothing on the queue will run it", async () => {
    await reset();
    const { actor } = await createOrgWithMember(db, "operator");
    const gone = await startSelftest(db, { actor, input: { steps: 1, stepMs: 0 } });
    const usedUp = await startSelftest(db, { actor, input: { steps: 1, stepMs: 0 } });
    // One entry removed by hand, one whose attempts ran out while its job still says running.
    await db.$executeRaw`DELETE FROM graphile_worker._private_jobs WHERE payload->>'jobId' = ${gone.jobId}`;
    await db.$executeRaw`UPDATE graphile_worker._private_jobs SET attempts = max_attempts, run_at = now() - interval '1 hour' WHERE payload->>'jobId' = ${usedUp.jobId}`;
    await db.job.update({ where: { id: usedUp.jobId }, data: { status: "running" } });
    expect(await checkHealth(db, { staleAfterMs: 60_000 })).toMatchObject({ status: "ok", jobs: { stranded: 0 } });
    await age(gone.jobId, 3 * 60);
    await age(usedUp.jobId, 3 * 60);
    const health = await checkHealth(db, { staleAfterMs: 60_000 });
    expect(health).toMatchObject({ status: "degraded", jobs: { ok: false, overdue: 0, stranded: 2 } });
    expect(health.jobs.problems).toEqual(["2 jobs are queued or running but no longer on the queue, so no worker will run them (e.g. system.selftest) — cancel and retry them"]);
  });

  it("is ok again once the stuck job has run", async () => {
    await reset();
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await startSelftest(db, { actor, input: { steps: 1, stepMs: 0 } });
    await age(jobId, 11 * 60);
    expect((await checkHealth(db, { staleAfterMs: 60_000 })).jobs.overdue).toBe(1);
    await runJob({ db, def: selftestJob, jobId, attempt: 1, cancellations: new CancellationRegistry(), handler: async () => ({}) });
    await db.$executeRaw`DELETE FROM graphile_worker._private_jobs WHERE payload->>'jobId' = ${jobId}`;
    expect(await checkHealth(db, { staleAfterMs: 60_000 })).toMatchObject({ status: "ok", jobs: { ok: true, problems: [] } });
  });
});
