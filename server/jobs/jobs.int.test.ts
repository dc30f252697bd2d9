import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createDb, type Db } from "../db";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { startWorker, type StartedWorker } from "../../worker/worker";
import { selftestJob, type JobDef } from "./catalog";
import { enqueue } from "./enqueue";
import { cancelJob, getJob, listJobEvents, retryJob } from "./jobs.service";
import { runJob } from "./run";
import { CancellationRegistry } from "./cancellation";
import { startSelftest } from "../system/selftest.service";

// A database of its own: a worker on the shared one would take other files' jobs, which they
// take off the queue and run themselves.
let database: TestDatabase;
let db: Db;
let worker: StartedWorker;

beforeAll(async () => {
  database = await createTestDatabase("jobs");
  db = createDb(database.url, 4);
  worker = await startWorker({ url: database.url, concurrency: 2, log: () => {} });
}, 60_000);
afterAll(async () => {
  await worker.stop();
  await db.$disconnect();
  await database.drop();
});

const finished = (orgId: string, jobId: string) =>
  waitFor(async () => {
    const job = await getJob(db, { orgId, jobId });
    return ["succeeded", "failed", "cancelled"].includes(job.status) && job;
  }, { what: `job ${jobId} to finish` });

describe("jobs", () => {
  it("runs the self-test through queue and worker, with a contiguous progress log", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await startSelftest(db, { actor, input: { steps: 3, stepMs: 20 } });
    const job = await finished(actor.orgId, jobId);
    expect(job.status).toBe("succeeded");
    expect(job.progress).toBe(1);
    const events = await listJobEvents(db, { orgId: actor.orgId, jobId });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.map((e) => e.status).filter(Boolean)).toEqual(["queued", "running", "succeeded"]);
    const progress = events.map((e) => e.progress).filter((p): p is number => p !== null);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(events.some((e) => e.message === "Step 3 of 3")).toBe(true);
  });

  it("names what each job is about, so rows of one kind can be told apart", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const dataset = await db.dataset.create({ data: { orgId: actor.orgId, repoId: `lab/subject-${actor.orgId.slice(0, 6)}` } });
    const episode = await db.episode.create({ data: { orgId: actor.orgId, datasetId: dataset.id, number: 7, mode: "edge", task: "t" } });
    const job = await db.job.create({ data: { orgId: actor.orgId, kind: "datasets.encode-episode", payload: { episodeId: episode.id } } });
    const { jobId: selftest } = await startSelftest(db, { actor, input: { steps: 1, stepMs: 0 } });
    expect((await getJob(db, { orgId: actor.orgId, jobId: job.id })).subject).toBe(`${dataset.repoId} episode 7`);
    expect((await getJob(db, { orgId: actor.orgId, jobId: selftest })).subject).toBeNull();
  });

  it("enqueues nothing when the surrounding transaction rolls back", async () => {
    const { actor } = await createOrgWithMember(db);
    let jobId = "";
    await expect(
      db.$transaction(async (tx) => {
        jobId = (await enqueue(selftestJob, { steps: 1, stepMs: 0 }, { tx, orgId: actor.orgId, createdById: actor.userId })).jobId;
        const queued = await tx.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM graphile_worker._private_jobs WHERE payload->>'jobId' = ${jobId}`;
        expect(queued[0].n).toBe(1n);
        throw new Error("the state change failed");
      }),
    ).rejects.toThrow("the state change failed");
    expect(await db.job.count({ where: { id: jobId } })).toBe(0);
    const after = await db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM graphile_worker._private_jobs WHERE payload->>'jobId' = ${jobId}`;
    expect(after[0].n).toBe(0n);
  });

  it("refuses a payload that does not match the job's schema", async () => {
    const { actor } = await createOrgWithMember(db);
    await expect(
      db.$transaction((tx) => enqueue(selftestJob, { steps: 0 } as never, { tx, orgId: actor.orgId })),
    ).rejects.toMatchObject({ code: "BAD_REQUEST" });
  });

  it("cancels a running job through its AbortSignal", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await startSelftest(db, { actor, input: { steps: 20, stepMs: 500 } });
    await waitFor(async () => (await getJob(db, { orgId: actor.orgId, jobId })).status === "running", { what: "job to start" });
    const startedAt = Date.now();
    await cancelJob(db, { actor, jobId });
    const job = await finished(actor.orgId, jobId);
    expect(job.status).toBe("cancelled");
    // Aborted mid-step, not after all twenty.
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    const events = await listJobEvents(db, { orgId: actor.orgId, jobId });
    expect(events.at(-1)).toMatchObject({ status: "cancelled", message: "Cancelled" });
    expect(await db.auditEvent.count({ where: { orgId: actor.orgId, action: "job.cancel", target: jobId } })).toBe(1);
  });

  it("cancels a queued job before it starts, and refuses to cancel a finished one", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await db.$transaction((tx) =>
      enqueue(selftestJob, { steps: 1, stepMs: 0 }, { tx, orgId: actor.orgId, createdById: actor.userId, runAt: new Date(Date.now() + 60_000) }),
    );
    const cancelled = await cancelJob(db, { actor, jobId });
    expect(cancelled.status).toBe("cancelled");
    await expect(cancelJob(db, { actor, jobId })).rejects.toMatchObject({ code: "CONFLICT" });
  });

  it("runs a job once when it is cancelled while queued and then retried", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await db.$transaction((tx) =>
      enqueue(selftestJob, { steps: 2, stepMs: 50 }, { tx, orgId: actor.orgId, createdById: actor.userId, runAt: new Date(Date.now() + 1_500) }),
    );
    await cancelJob(db, { actor, jobId });
    await retryJob(db, { actor, jobId });
    const job = await finished(actor.orgId, jobId);
    expect(job.status).toBe("succeeded");
    // Give a leftover queue entry, had there been one, time to run too.
    await new Promise((r) => setTimeout(r, 2_500));
    const events = await listJobEvents(db, { orgId: actor.orgId, jobId });
    expect(events.filter((e) => e.message === "Started")).toHaveLength(1);
    const entries = await db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM graphile_worker._private_jobs WHERE payload->>'jobId' = ${jobId}`;
    expect(entries[0].n).toBe(0n);
  });

  it("retries a failed job from the start, keeping its history", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await startSelftest(db, { actor, input: { steps: 2, stepMs: 10, failAtStep: 1 } });
    const failed = await finished(actor.orgId, jobId);
    expect(failed.status).toBe("failed");
    expect(failed.error).toContain("step 1");
    await expect(retryJob(db, { actor: { ...actor }, jobId: crypto.randomUUID() })).rejects.toMatchObject({ code: "NOT_FOUND" });
    // The answer is the job as it is once the retry committed: a worker may have taken it already.
    const retried = await retryJob(db, { actor, jobId });
    expect(retried.id).toBe(jobId);
    expect(["queued", "running", "failed"]).toContain(retried.status);
    const again = await finished(actor.orgId, jobId);
    expect(again.status).toBe("failed");
    const events = await listJobEvents(db, { orgId: actor.orgId, jobId });
    expect(events.filter((e) => e.message.startsWith("Retried by")).map((e) => e.status)).toEqual(["queued"]);
    expect(events.filter((e) => e.status === "failed")).toHaveLength(2);
  });

  it("hides another organisation's jobs", async () => {
    const a = await createOrgWithMember(db, "operator");
    const b = await createOrgWithMember(db, "operator");
    const { jobId } = await startSelftest(db, { actor: a.actor, input: { steps: 1, stepMs: 0 } });
    await expect(getJob(db, { orgId: b.orgId, jobId })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(cancelJob(db, { actor: b.actor, jobId })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(listJobEvents(db, { orgId: b.orgId, jobId })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

describe("runJob", () => {
  const flaky: JobDef<z.ZodObject<{ n: z.ZodNumber }>> = { name: "test.flaky", title: "Flaky", payload: z.object({ n: z.number() }), maxAttempts: 3 };

  it("asks the queue to retry until the last attempt, then records the failure", async () => {
    const { actor } = await createOrgWithMember(db);
    const job = await db.job.create({ data: { orgId: actor.orgId, kind: flaky.name, payload: { n: 1 }, maxAttempts: 3 } });
    const cancellations = new CancellationRegistry();
    const handler = async () => {
      throw new Error("the device did not answer");
    };
    await expect(runJob({ db, def: flaky, jobId: job.id, attempt: 1, cancellations, handler })).rejects.toThrow("did not answer");
    // The attempt's error is on the job with the event that says it will be retried, and the job has not ended.
    expect(await db.job.findUniqueOrThrow({ where: { id: job.id } })).toMatchObject({ status: "queued", error: "the device did not answer", finishedAt: null });
    await expect(runJob({ db, def: flaky, jobId: job.id, attempt: 3, cancellations, handler })).resolves.toBeUndefined();
    const after = await db.job.findUniqueOrThrow({ where: { id: job.id } });
    expect(after).toMatchObject({ status: "failed", error: "the device did not answer", attempts: 3 });
    const events = await listJobEvents(db, { orgId: actor.orgId, jobId: job.id });
    expect(events.map((e) => e.message)).toContain("Attempt 1 failed: the device did not answer. Retrying with backoff.");
  });

  it("commits a running job's own events without waiting for the disk, so the organisation's event lock is not held through a flush", async () => {
    // One connection, so each check runs right after the write it follows. Right after a commit
    // that did not wait, the WAL flushed lags the WAL written; after one that waited it does not,
    // unless another session wrote meanwhile (hence "most", not "all" — alone it is all of them).
    const single = createDb(database.url, 1);
    try {
      const { actor } = await createOrgWithMember(single);
      const job = await single.job.create({ data: { orgId: actor.orgId, kind: flaky.name, payload: { n: 1 } } });
      let behind = 0;
      const writes = 40;
      await runJob({
        db: single, def: flaky, jobId: job.id, attempt: 1, cancellations: new CancellationRegistry(),
        handler: async (_payload, ctx) => {
          for (let i = 0; i < writes; i++) {
            await ctx.progress.set(i / writes, `write ${i}`);
            const [row] = await single.$queryRaw<{ behind: boolean }[]>`SELECT pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn() AS behind`;
            if (row.behind) behind++;
          }
          return { wrote: writes };
        },
      });
      expect(behind).toBeGreaterThanOrEqual(writes / 2);
      const events = await listJobEvents(single, { orgId: actor.orgId, jobId: job.id });
      expect(events.map((e) => e.message)).toEqual(["Started", ...Array.from({ length: writes }, (_, i) => `write ${i}`), "Finished"]);
      // The end's details went in with the event that ends it.
      const ended = await single.job.findUniqueOrThrow({ where: { id: job.id } });
      expect(ended).toMatchObject({ status: "succeeded", result: { wrote: writes }, error: null, progress: 1 });
      expect(ended.finishedAt!.getTime()).toBeGreaterThanOrEqual(ended.startedAt!.getTime());
    } finally {
      await single.$disconnect();
    }
  });

  it("does not run a job twice once it has finished (a redelivered queue entry is harmless)", async () => {
    const { actor } = await createOrgWithMember(db);
    const job = await db.job.create({ data: { orgId: actor.orgId, kind: flaky.name, payload: { n: 1 }, status: "succeeded" } });
    let calls = 0;
    await runJob({ db, def: flaky, jobId: job.id, attempt: 2, cancellations: new CancellationRegistry(), handler: async () => void calls++ });
    expect(calls).toBe(0);
  });
});
