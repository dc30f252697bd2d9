import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { lockHolder, startWorkerProcess, type WorkerProcess } from "../../tests/helpers/worker-process";
import { startSelftest } from "./selftest.service";
import { handoffWindowMs, MAX_CRASHES, releaseDeadWorkers } from "./heartbeat.service";

// Real worker processes (`worker/index.ts`, as `npm start` runs it), killed with SIGKILL while
// they hold a job, beside others that keep running. A database of its own, so no other
// test's worker picks the job up.

let database: TestDatabase;
let db: Db;
const children: ChildProcess[] = [];
const HEARTBEAT_MS = 300;
const STALE_AFTER_MS = 1_500;
const settings = { WORKER_HEARTBEAT_MS: String(HEARTBEAT_MS), WORKER_STALE_AFTER_MS: String(STALE_AFTER_MS) };
/** What docs/operations.md promises, with these settings. */
const WINDOW_MS = handoffWindowMs({ heartbeatMs: HEARTBEAT_MS, staleAfterMs: STALE_AFTER_MS });
/** For a busy two-core machine: the test checks the promise, not the speed. */
const MARGIN_MS = 10_000;

beforeAll(async () => {
  database = await createTestDatabase("crash");
  db = createDb(database.url, 3);
}, 60_000);
afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await db.$disconnect();
  await database.drop();
});

const jobOf = (id: string) => db.job.findUniqueOrThrow({ where: { id } });

async function startWorker(): Promise<WorkerProcess> {
  const worker = startWorkerProcess(database.url, { env: settings, tracked: children });
  await worker.ready;
  return worker;
}

/** The live worker whose pool holds the job's queue entry while the job runs. */
async function holderOf(jobId: string, workers: WorkerProcess[]): Promise<WorkerProcess> {
  return waitFor(async () => {
    const holder = await lockHolder(db, jobId, workers);
    return (holder && (await jobOf(jobId)).status === "running" && holder) || false;
  }, { timeoutMs: 30_000, what: "a worker to run the job" });
}

async function kill(worker: WorkerProcess): Promise<void> {
  worker.child.kill("SIGKILL");
  await worker.exited;
}

const lastSeq = async (jobId: string) => (await jobOf(jobId)).lastSeq;

describe("a worker killed while it holds a job", () => {
  it(`is found dead and its job runs on another worker within the stated window (${WINDOW_MS} ms here), finishing with the attempt given back`, async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const workers = [await startWorker(), await startWorker()];
    const { jobId } = await startSelftest(db, { actor, input: { steps: 6, stepMs: 400 } });
    await waitFor(async () => (await jobOf(jobId)).step === "Step 2 of 6", { timeoutMs: 20_000, what: "the job to reach step 2" });
    const holder = await holderOf(jobId, workers);
    const survivor = workers.find((w) => w !== holder)!;
    const seqAtKill = await lastSeq(jobId);
    await kill(holder);
    const killedAt = Date.now();

    // The next start of the job, on the survivor.
    await waitFor(async () => (await db.jobEvent.count({ where: { jobId, seq: { gt: seqAtKill }, status: "running" } })) > 0, { timeoutMs: WINDOW_MS + MARGIN_MS, what: "the job to start again on the other worker" });
    expect(Date.now() - killedAt).toBeLessThan(WINDOW_MS + MARGIN_MS);

    const done = await waitFor(async () => {
      const job = await jobOf(jobId);
      return ["succeeded", "failed", "cancelled"].includes(job.status) && job;
    }, { timeoutMs: 30_000, what: "the job to finish on the other worker" });
    expect(done).toMatchObject({ status: "succeeded", crashes: 1, progress: 1 });
    const events = await db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } });
    expect(events.map((e) => e.message)).toEqual(expect.arrayContaining([expect.stringMatching(/stopped answering; it goes on from where it stood/)]));
    expect(events.at(-1)).toMatchObject({ status: "succeeded", message: "Finished" });
    expect(survivor.output()).toMatch(/stopped without shutting down: 1 job\(s\) handed on/);
    // Its queue entry is gone and nothing is left locked.
    const [left] = await db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM graphile_worker._private_jobs WHERE locked_by IS NOT NULL OR payload->>'jobId' = ${jobId}`;
    expect(left.n).toBe(0n);
    await kill(survivor);
  }, 120_000);

  it(`ends a job whose worker was killed on every attempt (${MAX_CRASHES}) failed, saying so, rather than leaving it running`, async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    await db.$executeRaw`DELETE FROM "WorkerHeartbeat"`;
    const workers = [await startWorker(), await startWorker()];
    const { jobId } = await startSelftest(db, { actor, input: { steps: 40, stepMs: 300 } });
    for (let crash = 1; crash <= MAX_CRASHES; crash++) {
      const holder = await holderOf(jobId, workers);
      await kill(holder);
      // Another worker stands by for the next attempt (and, after the last, to find it dead).
      workers.push(await startWorker());
    }
    const ended = await waitFor(async () => {
      const job = await jobOf(jobId);
      return job.status !== "running" && job.status !== "queued" && job;
    }, { timeoutMs: WINDOW_MS + MARGIN_MS, what: "the job to be ended" });
    expect(ended).toMatchObject({ status: "failed", crashes: MAX_CRASHES });
    expect(ended.error).toMatch(/^The worker running it stopped answering on every attempt \(3\), the last time on .+, pid \d+; it was ended/);
    const events = await db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } });
    expect(events.filter((e) => /stopped answering; it goes on/.test(e.message))).toHaveLength(MAX_CRASHES - 1);
    expect(events.at(-1)).toMatchObject({ status: "failed", level: "error" });
    const [left] = await db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM graphile_worker._private_jobs WHERE payload->>'jobId' = ${jobId}`;
    expect(left.n).toBe(0n);
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) await kill(w);
  }, 180_000);

  it("stops the run of a worker that was frozen past the window once it wakes, the job going on where it was handed", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    await db.$executeRaw`DELETE FROM "WorkerHeartbeat"`;
    const workers = [await startWorker(), await startWorker()];
    const { jobId } = await startSelftest(db, { actor, input: { steps: 12, stepMs: 400 } });
    const frozen = await holderOf(jobId, workers);
    const seqAtFreeze = await lastSeq(jobId);
    frozen.child.kill("SIGSTOP");
    try {
      await waitFor(async () => (await db.jobEvent.count({ where: { jobId, seq: { gt: seqAtFreeze }, status: "running" } })) > 0, { timeoutMs: WINDOW_MS + MARGIN_MS, what: "the job to start again on the other worker" });
    } finally {
      frozen.child.kill("SIGCONT");
    }
    await waitFor(async () => /Job .+ was handed on to another worker while this one was not heard from/.test(frozen.output()), { timeoutMs: 20_000, what: "the woken worker to stop its run" });
    const done = await waitFor(async () => {
      const job = await jobOf(jobId);
      return ["succeeded", "failed", "cancelled"].includes(job.status) && job;
    }, { timeoutMs: 30_000, what: "the job to finish" });
    expect(done).toMatchObject({ status: "succeeded", crashes: 1 });
    const events = await db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } });
    expect(events.filter((e) => e.message === "Finished")).toHaveLength(1);
    // The woken worker wrote no ending of its own, nor gave the entry back.
    expect(events.some((e) => /Interrupted|Failed/.test(e.message))).toBe(false);
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) await kill(w);
  }, 120_000);

  it("hands on jobs locked by a worker that died before its first heartbeat, once the window has passed", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    await db.$executeRaw`DELETE FROM "WorkerHeartbeat"`;
    const { jobId } = await startSelftest(db, { actor, input: { steps: 1, stepMs: 0 } });
    await db.job.update({ where: { id: jobId }, data: { status: "running" } });
    await db.$executeRaw`UPDATE graphile_worker._private_jobs SET locked_by = 'pool-never-beat', locked_at = now(), attempts = 1 WHERE payload->>'jobId' = ${jobId}`;
    // Not yet: a pool's first beat may follow its first job by a moment.
    expect(await releaseDeadWorkers(db, 60_000)).toEqual([]);
    await db.$executeRaw`UPDATE graphile_worker._private_jobs SET locked_at = now() - interval '2 minutes' WHERE payload->>'jobId' = ${jobId}`;
    expect(await releaseDeadWorkers(db, 60_000)).toEqual([{ id: "pool-never-beat", host: null, pid: null, resumed: [jobId], ended: [] }]);
    const [entry] = await db.$queryRaw<{ locked_by: string | null; attempts: number }[]>`SELECT locked_by, attempts FROM graphile_worker._private_jobs WHERE payload->>'jobId' = ${jobId}`;
    expect(entry).toEqual({ locked_by: null, attempts: 0 });
    expect(await jobOf(jobId)).toMatchObject({ status: "queued", crashes: 1 });
    expect(await releaseDeadWorkers(db, 60_000)).toEqual([]);
  });

  it("ends the training run and the evaluation of a job it ends, so neither shows running for ever", async () => {
    const { actor, orgId } = await createOrgWithMember(db, "operator");
    await db.$executeRaw`DELETE FROM "WorkerHeartbeat"`;
    const { jobId } = await startSelftest(db, { actor, input: { steps: 1, stepMs: 0 } });
    await db.job.update({ where: { id: jobId }, data: { status: "running", crashes: MAX_CRASHES - 1 } });
    await db.$executeRaw`UPDATE graphile_worker._private_jobs SET locked_by = 'pool-died', locked_at = now() - interval '2 minutes', attempts = 1 WHERE payload->>'jobId' = ${jobId}`;
    const target = await db.trainingTarget.create({ data: { orgId, name: "gpu", host: "gpu.lab.test", username: "train", authKind: "key", credential: "sealed", workDir: "/srv/runs", commandTemplate: "lerobot-train" } });
    const dataset = await db.dataset.create({ data: { orgId, repoId: `lab/crash-${Date.now()}` } });
    const run = await db.trainingRun.create({ data: { orgId, targetId: target.id, datasetId: dataset.id, name: "act", policyType: "act", steps: 100, saveFreq: 50, logFreq: 10, status: "running", jobId } });
    const evaluation = await db.datasetEvaluation.create({ data: { orgId, datasetId: dataset.id, status: "running", jobId } });
    expect(await releaseDeadWorkers(db, 60_000)).toEqual([{ id: "pool-died", host: null, pid: null, resumed: [], ended: [jobId] }]);
    expect(await db.trainingRun.findUniqueOrThrow({ where: { id: run.id } })).toMatchObject({ status: "lost", error: expect.stringMatching(/^The worker running it stopped answering .*Gantry stopped following this run: its process may still be training on the host/) });
    expect(await db.datasetEvaluation.findUniqueOrThrow({ where: { id: evaluation.id } })).toMatchObject({ status: "failed", error: expect.stringMatching(/^The worker running it stopped answering/) });
  });
});
