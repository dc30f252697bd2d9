import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { buildSlowModel } from "../../tests/helpers/slow-model";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { addVersionFromUpload, createModel } from "../models/registry.service";
import { validateOnnxFile } from "../models/validation.service";
import { validateModelVersion } from "../models/version-validation.service";
import { blobStore } from "../storage/blobs";
import { CancellationRegistry } from "./cancellation";
import { selftestJob, validateModelJob } from "./catalog";
import { enqueue } from "./enqueue";
import { retryJob } from "./jobs.service";
import { appendJobEvent, createProgressReporter, type ProgressReporter } from "./progress";
import { runJob } from "./run";

// "Finished jobs sometimes show stale progress: 'succeeded · 45% · Timing run 6 of 20', with
// timing events logged after 'Finished'." Real Postgres, real onnxruntime; a database of its
// own, so no worker takes these jobs: the tests run them themselves.

let database: TestDatabase;
let db: Db;
let actor: OrgActor;

beforeAll(async () => {
  database = await createTestDatabase("jobend");
  db = createDb(database.url, 4);
  actor = (await createOrgWithMember(db, "operator")).actor;
}, 60_000);
afterAll(async () => {
  await db.$disconnect();
  await database.drop();
});

const eventsOf = (jobId: string) => db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } });
const newJob = () => db.$transaction((tx) => enqueue(selftestJob, { steps: 1, stepMs: 0 }, { tx, orgId: actor.orgId, createdById: actor.userId }));

describe("a job's final event", () => {
  it("stays its last: a progress report arriving after 'Finished' changes nothing", async () => {
    const { jobId } = await newJob();
    let late: ProgressReporter | null = null;
    await runJob({
      db, def: selftestJob, jobId, attempt: 1, cancellations: new CancellationRegistry(),
      handler: async (_payload, { progress }) => {
        await progress.step("Timing run 20 of 20", 0.9);
        late = progress; // its work still holds the reporter after it returns
      },
    });
    expect(await db.job.findUniqueOrThrow({ where: { id: jobId } })).toMatchObject({ status: "succeeded", progress: 1, step: "Timing run 20 of 20" });
    const before = await eventsOf(jobId);

    await late!.step("Timing run 6 of 20", 0.45);
    await late!.set(0.5, "halfway");
    const written = await appendJobEvent(db, { jobId, orgId: actor.orgId, message: "Timing run 7 of 20", step: "Timing run 7 of 20", progress: 0.5 });
    expect(written).toMatchObject({ written: false, id: null, seq: before.at(-1)!.seq });

    expect(await db.job.findUniqueOrThrow({ where: { id: jobId } })).toMatchObject({ status: "succeeded", progress: 1, step: "Timing run 20 of 20", lastSeq: before.at(-1)!.seq });
    const after = await eventsOf(jobId);
    expect(after).toEqual(before);
    expect(after.at(-1)).toMatchObject({ message: "Finished", status: "succeeded", progress: 1 });
  });

  it("is followed by the events of a retry, which starts the job again", async () => {
    const { jobId } = await newJob();
    await runJob({ db, def: selftestJob, jobId, attempt: 3, cancellations: new CancellationRegistry(), handler: async () => { throw new Error("the camera is gone"); } });
    expect((await db.job.findUniqueOrThrow({ where: { id: jobId } })).status).toBe("failed");
    await retryJob(db, { actor, jobId });
    expect(await db.job.findUniqueOrThrow({ where: { id: jobId } })).toMatchObject({ status: "queued", progress: 0 });
    expect((await eventsOf(jobId)).at(-1)).toMatchObject({ status: "queued", message: expect.stringMatching(/^Retried by /) });
  });
});

describe("model validation's progress", () => {
  async function uploadSlowModel() {
    const { id } = await createModel(db, { actor, input: { name: `timing ${Math.random().toString(36).slice(2, 8)}`, description: "" } });
    return addVersionFromUpload(db, { actor, modelId: id, body: Readable.from([buildSlowModel(128, 8)]), blobs: blobStore(), maxBytes: 10_000_000, dims: {} });
  }

  it("is all written before the validation returns, even when the database is slow to take it", async () => {
    const added = await uploadSlowModel();
    // The job's real reporter, each write held back 150 ms as on a busy database.
    const real = createProgressReporter(db, { id: added.jobId, orgId: actor.orgId });
    let inFlight = 0;
    const landed: string[] = [];
    const slow = <A extends unknown[]>(write: (...args: A) => Promise<void>, name: (...args: A) => string) => async (...args: A) => {
      inFlight++;
      await new Promise((r) => setTimeout(r, 150));
      await write(...args);
      landed.push(name(...args));
      inFlight--;
    };
    const progress: ProgressReporter = { step: slow(real.step, (n) => n), set: slow(real.set, (f, m) => m ?? String(f)), log: slow(real.log, (m) => m) };
    await validateModelVersion(db, { versionId: added.versionId, orgId: actor.orgId, dims: {}, runs: 20, timeoutMs: 60_000, blobs: blobStore(), validate: validateOnnxFile, progress, signal: new AbortController().signal });
    expect(inFlight).toBe(0);
    const timing = landed.filter((s) => s.startsWith("Timing run"));
    expect(timing.length).toBeGreaterThan(5);
    // In the order the validator reported them.
    expect(timing).toEqual([...timing].sort((a, b) => Number(/run (\d+)/.exec(a)![1]) - Number(/run (\d+)/.exec(b)![1])));
    expect(landed.at(-1)).toMatch(/is ready$/);
  }, 60_000);

  it("never lands after the job's 'Finished', which keeps 100 % and its last step", async () => {
    const added = await uploadSlowModel();
    await runJob({
      db, def: validateModelJob, jobId: added.jobId, attempt: 1, cancellations: new CancellationRegistry(),
      handler: (payload, { progress, signal, job }) =>
        validateModelVersion(db, { versionId: payload.versionId, orgId: job.orgId, dims: {}, runs: 20, timeoutMs: 60_000, blobs: blobStore(), validate: validateOnnxFile, progress, signal }),
    });
    // Anything still on its way has had time to land.
    await new Promise((r) => setTimeout(r, 500));
    const events = await eventsOf(added.jobId);
    expect(events.at(-1)).toMatchObject({ message: "Finished", status: "succeeded", progress: 1 });
    expect(events.some((e) => e.step?.startsWith("Timing run"))).toBe(true);
    const job = await db.job.findUniqueOrThrow({ where: { id: added.jobId } });
    expect(job).toMatchObject({ status: "succeeded", progress: 1, lastSeq: events.at(-1)!.seq });
    expect(job.step).not.toMatch(/^Timing run/);
  }, 60_000);
});
