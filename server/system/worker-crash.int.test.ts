import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { startWorkerProcess } from "../../tests/helpers/worker-process";
import { startSelftest } from "./selftest.service";
import { MAX_CRASHES, recordHeartbeat, releaseDeadWorkers } from "./heartbeat.service";

// Real worker processes (`worker/index.ts`, as `npm start` runs it), killed by signal while
// they hold a job. A database of its own, so no other test's worker picks the job up.

let database: TestDatabase;
let db: Db;
const children: ChildProcess[] = [];
const HEARTBEAT_MS = 300;
const STALE_AFTER_MS = 1_500;

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

describe("a worker killed while it holds a job", () => {
  it("hands a one-attempt job on to the next worker, which finishes it, with the attempt given back", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const first = startWorkerProcess(database.url, { env: { WORKER_HEARTBEAT_MS: String(HEARTBEAT_MS), WORKER_STALE_AFTER_MS: String(STALE_AFTER_MS) }, tracked: children });
    await first.ready;
    const { jobId } = await startSelftest(db, { actor, input: { steps: 6, stepMs: 400 } });
    await waitFor(async () => (await jobOf(jobId)).step === "Step 2 of 6", { timeoutMs: 20_000, what: "the job to reach step 2" });
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));

    const second = startWorkerProcess(database.url, { env: { WORKER_HEARTBEAT_MS: String(HEARTBEAT_MS), WORKER_STALE_AFTER_MS: String(STALE_AFTER_MS) }, tracked: children });
    await second.ready;
    const done = await waitFor(async () => {
      const job = await jobOf(jobId);
      return ["succeeded", "failed", "cancelled"].includes(job.status) && job;
    }, { timeoutMs: STALE_AFTER_MS + 20_000, what: "the job to finish on the second worker" });
    expect(done).toMatchObject({ status: "succeeded", crashes: 1, progress: 1 });
    const events = await db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } });
    expect(events.map((e) => e.message)).toEqual(expect.arrayContaining([expect.stringMatching(/stopped; it goes on from where it stood/)]));
    expect(events.at(-1)).toMatchObject({ status: "succeeded", message: "Finished" });
    expect(second.output()).toMatch(/stopped without shutting down: 1 job\(s\) handed on/);
    // Its queue entry is gone and nothing is left locked.
    const [left] = await db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM graphile_worker._private_jobs WHERE locked_by IS NOT NULL OR payload->>'jobId' = ${jobId}`;
    expect(left.n).toBe(0n);
    second.child.kill("SIGTERM");
    await new Promise((r) => second.child.once("exit", r));
  }, 90_000);

  it(`ends a job whose worker died under it ${MAX_CRASHES} times, saying so, rather than leaving it running`, async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await startSelftest(db, { actor, input: { steps: 1, stepMs: 0 } });
    // Two earlier crashes; the worker holding it now died as well.
    await db.job.update({ where: { id: jobId }, data: { status: "running", crashes: MAX_CRASHES - 1 } });
    await recordHeartbeat(db, ["pool-dead"]);
    await db.$executeRaw`UPDATE "WorkerHeartbeat" SET "lastSeen" = "lastSeen" - interval '1 hour' WHERE id = 'pool-dead'`;
    await db.$executeRaw`UPDATE graphile_worker._private_jobs SET locked_by = 'pool-dead', locked_at = now(), attempts = 1 WHERE payload->>'jobId' = ${jobId}`;
    const released = await releaseDeadWorkers(db, 1_000);
    expect(released).toEqual([expect.objectContaining({ id: "pool-dead", resumed: [], ended: [jobId] })]);
    const job = await jobOf(jobId);
    expect(job).toMatchObject({ status: "failed", crashes: MAX_CRASHES });
    expect(job.error).toMatch(/stopped while running it, 3 times/);
    const [left] = await db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM graphile_worker._private_jobs WHERE payload->>'jobId' = ${jobId}`;
    expect(left.n).toBe(0n);
    expect(await db.workerHeartbeat.count({ where: { id: "pool-dead" } })).toBe(0);
  });
});
