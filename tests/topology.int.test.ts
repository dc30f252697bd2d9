import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../server/db";
import { createApiToken } from "../server/auth/tokens.service";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { localBuildDir } from "../server/datasets/build-files";
import { episodeFilesOf } from "../server/datasets/episode-files";
import { createS3BlobStore, type S3BlobStore } from "../server/storage/s3-blob-store";
import { createS3Client } from "../server/storage/s3-client";
import { sharedSwift, swiftSkipReason } from "./helpers/s3-swift";
import { createTestDatabase, type TestDatabase } from "./setup/test-database";
import { createOrgWithMember, waitFor } from "./helpers/factories";
import { lockHolder, startWorkerProcess, type WorkerProcess } from "./helpers/worker-process";
import { buildAgent, freePort, recordEpisode, runAgent, startBalancer, startTestPortal, tempDir, type TestPortal } from "../agent/test-helpers";

// Several processes on several "machines", on this one: two web processes (the real edge route
// handlers, server/edge/test-portal.ts) behind a balancer without sticky sessions, two worker
// processes, the model server, one Postgres of the test's own and the Swift bucket. No folder is
// shared: each web process and worker has a GANTRY_HOME, DATASETS_DIR and EDGE_UPLOAD_DIR of its
// own, as on machines of their own (uploads in progress are rows and blobs, raw episodes reach the
// workers through the bucket). An agent uploads a recording; its first
// upload is cut and resumes on the other web process; a worker is killed with SIGKILL while it
// encodes. Every episode must end in the dataset exactly once, and a machine that saw none of it
// reads the dataset from the bucket.

const skip = swiftSkipReason();

const HEARTBEAT_MS = 300;
const STALE_AFTER_MS = 1_500;
const EPISODES = [0, 1, 2];

let database: TestDatabase;
let db: Db;
let settings: Record<string, string>;
let portals: TestPortal[] = [];
let webMachines: Record<string, string>[] = [];
let serveUrl: string;
let store: S3BlobStore;
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (skip) return;
  buildAgent();
  database = await createTestDatabase("topology");
  db = createDb(database.url, 3);
  const s3 = await sharedSwift();
  const bucket = { endpoint: s3.endpoint, bucket: "gantry-topology", region: s3.region, forcePathStyle: true, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const client = createS3Client(bucket);
  await client.send(new CreateBucketCommand({ Bucket: bucket.bucket }));
  client.destroy();
  store = createS3BlobStore(bucket);
  settings = {
    DATABASE_URL: database.url,
    GANTRY_HOME: tempDir("topology-home"),
    EDGE_UPLOAD_DIR: tempDir("topology-edge"),
    // Every machine of one instance has the same secrets (docs/deploy.md), not each its own GANTRY_HOME's.
    AUTH_SECRET: crypto.randomBytes(32).toString("base64url"),
    ENCRYPTION_KEY: crypto.randomBytes(32).toString("base64"),
    DATASETS_DIR: tempDir("topology-datasets-web"),
    BLOB_STORE: "s3",
    S3_ENDPOINT: bucket.endpoint,
    S3_BUCKET: bucket.bucket,
    S3_REGION: bucket.region,
    S3_ACCESS_KEY_ID: bucket.accessKeyId,
    S3_SECRET_ACCESS_KEY: bucket.secretAccessKey,
    EDGE_MIN_FREE_DISK_BYTES: "0",
    WORKER_HEARTBEAT_MS: String(HEARTBEAT_MS),
    WORKER_STALE_AFTER_MS: String(STALE_AFTER_MS),
    // Slow enough on small noisy frames that a worker can be killed in the middle of one.
    EDGE_ENCODE_PRESET: "veryslow",
  };
  const machine = (name: string) => ({ ...settings, GANTRY_HOME: tempDir(`topology-home-${name}`), EDGE_UPLOAD_DIR: tempDir(`topology-edge-${name}`), DATASETS_DIR: tempDir(`topology-datasets-${name}`) });
  webMachines = [machine("web1"), machine("web2")];
  portals = await Promise.all(webMachines.map((m) => startTestPortal(m)));
  const servePort = await freePort();
  const serve = spawn(process.execPath, ["--import", "tsx", path.resolve("serve/index.ts")], { env: { ...process.env, ...settings, SERVE_PORT: String(servePort) }, stdio: "ignore" });
  children.push(serve);
  serveUrl = `http://127.0.0.1:${servePort}`;
}, 180_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await Promise.all(portals.map((p) => p.stop()));
  await db?.$disconnect();
  await database?.drop();
});

/** A worker on a machine of its own: its own GANTRY_HOME, DATASETS_DIR and EDGE_UPLOAD_DIR. */
const startWorker = (machine: string): WorkerProcess =>
  startWorkerProcess(database.url, { env: { ...settings, GANTRY_HOME: tempDir(`topology-home-${machine}`), DATASETS_DIR: tempDir(`topology-datasets-${machine}`), EDGE_UPLOAD_DIR: tempDir(`topology-edge-${machine}`), WORKER_CONCURRENCY: "2" }, tracked: children });

describe.skipIf(skip)("two web processes and two workers on one database and one bucket", () => {
  it("takes an agent's recording whose upload resumes on the other web process, and a worker killed mid-encode, with every episode once", async () => {
    const { actor, orgId } = await createOrgWithMember(db, "operator");
    const token = (await createApiToken(db, { actor, input: { name: "agent", scopes: ["write"] } })).token;
    const front = await startBalancer(portals.map((p) => p.port));
    const workers = [startWorker("w1"), startWorker("w2")];
    await Promise.all(workers.map((w) => w.ready));
    let killedJob: string | null = null;
    // Once an episode is being encoded, the worker holding it is killed under it.
    const killer = (async () => {
      const held = await waitFor(
        async () => {
          const running = await db.job.findMany({ where: { orgId, kind: "datasets.encode-episode", status: "running" }, select: { id: true } });
          for (const { id } of running) {
            const worker = await lockHolder(db, id, workers);
            if (worker) return { jobId: id, worker };
          }
          return null;
        },
        { timeoutMs: 240_000, intervalMs: 20, what: "an episode being encoded" },
      );
      killedJob = held.jobId;
      held.worker.child.kill("SIGKILL");
      await held.worker.exited;
    })();
    killer.catch(() => {});

    const home = tempDir("topology-agent");
    try {
      expect((await runAgent(["login", "--portal", front.url, "--token", token], { home })).code).toBe(0);
      const recording = tempDir("topology-recording");
      for (const episode of EPISODES) recordEpisode(recording, { episode, frames: 45, size: "320x240", noise: true });
      const repoId = `lab/topology-${crypto.randomBytes(4).toString("hex")}`;
      let isLost = false;
      const watcher = setInterval(() => {
        if (!isLost && front.bytesTo[0] > 6_000_000) {
          isLost = true;
          front.lose();
        }
      }, 5);
      const run = await runAgent(["upload", recording, "--dataset", repoId, "--task", "pick the cube"], { home });
      clearInterval(watcher);
      expect(run.code, run.stderr).toBe(0);
      expect(isLost).toBe(true);
      expect(front.bytesTo[1]).toBeGreaterThan(1_000_000);
      expect(run.stderr).toMatch(/resumed at/);
      // Nothing of the upload was kept on the web machines' disks: it resumed from its row and blobs.
      for (const web of webMachines) {
        expect(fs.readdirSync(web.EDGE_UPLOAD_DIR)).toEqual([]);
        expect(fs.existsSync(path.join(web.GANTRY_HOME, "uploads", "edge")) ? fs.readdirSync(path.join(web.GANTRY_HOME, "uploads", "edge")) : []).toEqual([]);
      }

      await killer;
      expect(killedJob).not.toBeNull();
      const settled = await waitFor(
        async () => {
          const episodes = await db.episode.findMany({ where: { orgId, dataset: { repoId } }, orderBy: { number: "asc" } });
          return episodes.length === EPISODES.length && episodes.every((e) => e.status !== "encoding") && episodes;
        },
        { timeoutMs: 240_000, intervalMs: 200, what: "every episode to be encoded" },
      );
      expect(settled.map((e) => [e.number, e.status, e.length])).toEqual(EPISODES.map((n) => [n, "ready", 45]));
      expect(settled.map((e) => e.datasetIndex).sort()).toEqual(EPISODES);
      // The job the killed worker held was handed on and finished once, by the other worker.
      expect(await db.job.findUniqueOrThrow({ where: { id: killedJob! } })).toMatchObject({ status: "succeeded", crashes: 1 });
      // A job's row ends a moment after its episode.
      const jobs = await waitFor(
        async () => {
          const rows = await db.job.findMany({ where: { orgId, kind: "datasets.encode-episode" } });
          return rows.every((j) => ["succeeded", "failed", "cancelled"].includes(j.status)) && rows;
        },
        { timeoutMs: 30_000, what: "every encoding job to end" },
      );
      expect(jobs.map((j) => [j.status, j.error])).toEqual(EPISODES.map(() => ["succeeded", null]));
      // The model server beside them read its endpoints from the same database all along.
      const ready = await waitFor(async () => (await fetch(`${serveUrl}/v2/health/ready`).catch(() => null))?.ok, { what: "the model server to be ready" });
      expect(ready).toBe(true);
      const [locked] = await db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM graphile_worker._private_jobs WHERE locked_by IS NOT NULL`;
      expect(locked.n).toBe(0n);

      // Each episode's files are in the bucket, and the dataset, read on a machine that saw none
      // of it, holds each episode once.
      expect(settled.every((e) => episodeFilesOf(e)?.["episode.json"])).toBe(true);
      const dataset = await db.dataset.findFirstOrThrow({ where: { orgId, repoId } });
      const root = await localBuildDir(store, { DATASETS_DIR: tempDir("topology-datasets-reader") }, dataset);
      const info = JSON.parse(fs.readFileSync(path.join(root, "meta", "info.json"), "utf8"));
      expect(info).toMatchObject({ total_episodes: EPISODES.length, total_frames: 45 * EPISODES.length });
    } finally {
      front.close();
      const stopping = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
      for (const w of stopping) w.child.kill("SIGTERM");
      await Promise.all(stopping.map((w) => w.exited));
    }
  }, 480_000);
});
