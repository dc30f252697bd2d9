import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeRawEpisode } from "../../tests/helpers/edge-episodes";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { startWorkerProcess } from "../../tests/helpers/worker-process";
import { buildSlowModel } from "../../tests/helpers/slow-model";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import type { OrgActor } from "../auth/roles";
import { rawEpisodeDir } from "../datasets/datasets.schemas";
import { registerRawEpisode } from "../datasets/ingest.service";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { addVersionFromUpload, createModel } from "../models/registry.service";
import { blobStore } from "../storage/blobs";

// Real worker processes (`worker/index.ts`) with real ffmpeg and onnxruntime children, stopped
// the ways they are in practice: a Ctrl-C at the terminal (SIGINT to the whole foreground
// process group, the worker and its children alike) and kill -9. A database of its own, so
// no other test's worker takes these jobs.

let database: TestDatabase;
let db: Db;
let actor: OrgActor;
const workers: ChildProcess[] = [];
const unique = () => Math.random().toString(36).slice(2, 8);

beforeAll(async () => {
  database = await createTestDatabase("shutdown");
  db = createDb(database.url, 3);
  actor = (await createOrgWithMember(db, "operator")).actor;
}, 60_000);
afterAll(async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) process.kill(-w.pid!, "SIGKILL");
  await db.$disconnect();
  await database.drop();
});


/** A worker in a process group of its own, as a terminal's foreground job is. */
const startWorker = (env: Record<string, string> = {}) => startWorkerProcess(database.url, { env, detached: true, tracked: workers });

/** What a Ctrl-C at the terminal does: SIGINT to every process of the foreground group. */
const pressCtrlC = (child: ChildProcess) => process.kill(-child.pid!, "SIGINT");

/** Live processes whose command line mentions `text` (e.g. an ffmpeg writing into a folder), of one parent if given. */
function processesMentioning(text: string, parent?: number): number[] {
  const found: number[] = [];
  for (const pid of fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      if (!fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text)) continue;
      const ppid = Number(fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[1]);
      if (parent === undefined || ppid === parent) found.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
const isAlive = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1][0] !== "Z";
  } catch {
    return false;
  }
};

const jobOf = (id: string) => db.job.findUniqueOrThrow({ where: { id } });
const queueEntry = async (jobId: string) => (await db.$queryRaw<{ attempts: number; run_at: Date; locked_by: string | null }[]>`SELECT attempts, run_at, locked_by FROM graphile_worker._private_jobs WHERE payload->>'jobId' = ${jobId}`)[0];
const finished = (jobId: string, timeoutMs = 60_000) =>
  waitFor(async () => {
    const job = await jobOf(jobId);
    return ["succeeded", "failed", "cancelled"].includes(job.status) && job;
  }, { timeoutMs, what: "the job to finish" });

/** An edge episode large enough that its encoding takes a few seconds. */
async function registerEpisode() {
  const repoId = `lab/stop-${unique()}`;
  await writeRawEpisode(rawEpisodeDir(env(), actor.orgId, repoId), { number: 0, frames: 300, size: "640x480", cameras: ["front"] });
  const { episodeId, jobId } = await registerRawEpisode(db, { orgId: actor.orgId, createdById: actor.userId, repoId, episodeIndex: 0, task: "Pick the cube", mode: "edge" });
  const episode = await db.episode.findUniqueOrThrow({ where: { id: episodeId } });
  const store = path.join(env().DATASETS_DIR, ".store", episode.datasetId, "episodes", episodeId);
  return { episodeId, jobId: jobId!, store };
}

const hasTempVideo = (store: string) => fs.existsSync(store) && fs.readdirSync(store).some((n) => n.endsWith(".tmp"));

describe("a worker stopped with Ctrl-C", () => {
  it("interrupts an encode in flight and puts it back on the queue; the next worker finishes it", async () => {
    const first = startWorker();
    await first.ready;
    const { episodeId, jobId, store } = await registerEpisode();
    await waitFor(async () => hasTempVideo(store), { timeoutMs: 30_000, intervalMs: 5, what: "ffmpeg to begin writing" });
    pressCtrlC(first.child);
    expect(await first.exited).toEqual({ code: 0, signal: null });
    expect(first.output()).toMatch(/1 running job\(s\) interrupted/);

    // Back on the queue with its attempt given back: not failed, and the episode not either.
    expect(await jobOf(jobId)).toMatchObject({ status: "queued", error: null });
    expect((await db.episode.findUniqueOrThrow({ where: { id: episodeId } })).status).toBe("encoding");
    expect(await queueEntry(jobId)).toMatchObject({ attempts: 0, locked_by: null });
    const events = await db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } });
    expect(events.at(-1)).toMatchObject({ status: "queued", level: "warn", message: expect.stringMatching(/^Interrupted: its worker was stopped/) });
    expect(events.map((e) => e.message).join("\n")).not.toMatch(/signal 2|Failed/);
    expect(processesMentioning(store)).toEqual([]);

    const second = startWorker();
    const job = await finished(jobId);
    expect(job).toMatchObject({ status: "succeeded", attempts: 1 });
    expect((await db.episode.findUniqueOrThrow({ where: { id: episodeId } })).status).toBe("ready");
    second.child.kill("SIGTERM");
    await second.exited;
  }, 150_000);

  it("interrupts a validation in flight without marking the version; the next worker validates it", async () => {
    // Many timing runs of a slow model: the validation child is busy when Ctrl-C comes.
    const workerEnv = { MODEL_VALIDATION_RUNS: "400" };
    const first = startWorker(workerEnv);
    await first.ready;
    const { id } = await createModel(db, { actor, input: { name: `slow ${unique()}`, description: "" } });
    const added = await addVersionFromUpload(db, { actor, modelId: id, body: Readable.from([buildSlowModel(256, 20)]), blobs: blobStore(), maxBytes: 10_000_000, dims: {} });
    await waitFor(async () => /^Timing run/.test((await jobOf(added.jobId)).step ?? ""), { timeoutMs: 60_000, intervalMs: 20, what: "the timing runs to start" });
    const validators = processesMentioning("validation-child", first.child.pid);
    expect(validators).toHaveLength(1);
    pressCtrlC(first.child);
    expect(await first.exited).toEqual({ code: 0, signal: null });

    expect(await jobOf(added.jobId)).toMatchObject({ status: "queued", error: null });
    expect(await db.modelVersion.findUniqueOrThrow({ where: { id: added.versionId } })).toMatchObject({ status: "validating", error: null });
    expect(validators.filter(isAlive)).toEqual([]);

    const second = startWorker({ MODEL_VALIDATION_RUNS: "3" });
    const job = await finished(added.jobId);
    expect(job.status).toBe("succeeded");
    expect((await db.modelVersion.findUniqueOrThrow({ where: { id: added.versionId } })).status).toBe("ready");
    second.child.kill("SIGTERM");
    await second.exited;
  }, 150_000);
});

describe("a worker killed outright", () => {
  it("takes its ffmpeg with it, and the next attempt clears what that ffmpeg left", async () => {
    const first = startWorker();
    await first.ready;
    const { episodeId, jobId, store } = await registerEpisode();
    await waitFor(async () => hasTempVideo(store), { timeoutMs: 30_000, intervalMs: 5, what: "ffmpeg to begin writing" });
    expect(processesMentioning(store).length).toBeGreaterThan(0);
    process.kill(first.child.pid!, "SIGKILL");
    await first.exited;
    // The encoder dies with the worker instead of running on to the end of the episode.
    await waitFor(async () => processesMentioning(store).length === 0, { timeoutMs: 1_000, intervalMs: 20, what: "ffmpeg to die with its worker" });
    expect(hasTempVideo(store)).toBe(true);

    const second = startWorker();
    const job = await finished(jobId);
    expect(job).toMatchObject({ status: "succeeded", crashes: 1 });
    expect((await db.episode.findUniqueOrThrow({ where: { id: episodeId } })).status).toBe("ready");
    expect(fs.readdirSync(store).filter((n) => n.endsWith(".tmp") || n.startsWith(".frames-"))).toEqual([]);
    second.child.kill("SIGTERM");
    await second.exited;
  }, 150_000);
});
