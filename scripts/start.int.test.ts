import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../server/db";
import { startSelftest } from "../server/system/selftest.service";
import { createOrgWithMember, waitFor } from "../tests/helpers/factories";
import { freePort } from "../tests/helpers/sshd-rig";
import { createTestDatabase, type TestDatabase } from "../tests/setup/test-database";

// `npm start` itself (scripts/start.ts) against the test Postgres, running only the worker
// (`--only worker`, so no portal build is needed), whose process is then killed outright.

let database: TestDatabase;
let db: Db;
const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-start-"));
const started: ChildProcess[] = [];

beforeAll(async () => {
  database = await createTestDatabase("start");
  db = createDb(database.url, 2);
});
afterAll(async () => {
  for (const c of started) if (c.exitCode === null) c.kill("SIGKILL");
  await db.$disconnect();
  await database.drop();
  fs.rmSync(home, { recursive: true, force: true });
});

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function runStart(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", path.resolve("scripts/start.ts"), ...args], {
    env: { ...process.env, GANTRY_HOME: home, WORKER_HEARTBEAT_MS: "300", WORKER_STALE_AFTER_MS: "1500", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.push(child);
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  /** Waits for `check` on the output so far; a timeout shows the output. */
  const waitForOutput = (check: (output: string) => boolean, what: string) =>
    waitFor(async () => check(output), { timeoutMs: 60_000, what }).catch((error: Error) => {
      throw new Error(`${error.message}; the output was:\n${output}`);
    });
  return { child, output: () => output, exited, waitForOutput };
}

describe("npm start", () => {
  it("starts a worker that was killed again, and stops everything only when asked", async () => {
    // This machine's copy of a dataset deleted on another machine goes before anything starts;
    // a folder the database knows nothing of stays.
    const { actor } = await createOrgWithMember(db, "operator");
    const datasetsDir = path.join(home, "datasets-start");
    const [deleted, unknown] = [crypto.randomUUID(), crypto.randomUUID()];
    for (const id of [deleted, unknown]) fs.mkdirSync(path.join(datasetsDir, ".store", id, "builds"), { recursive: true });
    await db.auditEvent.create({ data: { orgId: actor.orgId, actor: "someone", action: "dataset.delete", target: deleted } });
    // So does a copy of an uploaded archive no upload names, two days old; a fresh one stays.
    const [oldArchive, newArchive] = ["0123456789abcdef", "fedcba9876543210"].map((id) => path.join(datasetsDir, ".imports", id));
    for (const dir of [oldArchive, newArchive]) fs.mkdirSync(path.join(dir, "content"), { recursive: true });
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600_000);
    fs.utimesSync(oldArchive, twoDaysAgo, twoDaysAgo);
    // And the folder model uploads were kept in before they were rows and blobs.
    const oldModelUpload = path.join(home, "uploads", "models", crypto.randomUUID());
    fs.mkdirSync(oldModelUpload, { recursive: true });
    fs.writeFileSync(path.join(oldModelUpload, "data"), "partial");
    const start = runStart(["--only", "worker"], { DATABASE_URL: database.url, DATASETS_DIR: datasetsDir });
    const workerPids = () => [...start.output().matchAll(/\[gantry\] worker (?:started|restarted) \(pid (\d+)\)/g)].map((m) => Number(m[1]));
    await start.waitForOutput((o) => o.includes("[worker] Worker ready"), "the worker to start");
    expect(start.output()).toContain("[gantry] Removed this machine's copies of 1 deleted dataset\n");
    expect(fs.existsSync(path.join(datasetsDir, ".store", deleted))).toBe(false);
    expect(fs.existsSync(path.join(datasetsDir, ".store", unknown))).toBe(true);
    expect(fs.existsSync(oldArchive)).toBe(false);
    expect(fs.existsSync(newArchive)).toBe(true);
    expect(fs.existsSync(path.join(home, "uploads", "models"))).toBe(false);
    expect(start.output()).toMatch(/\[gantry\] Removed \S+uploads\/models: model uploads begun before they were kept in the blob store cannot be resumed/);
    const [first] = workerPids();
    expect(first).toBeGreaterThan(0);

    process.kill(first, "SIGKILL");
    await start.waitForOutput((o) => workerPids().length === 2 && o.split("[worker] Worker ready").length === 3, "the worker to come back");
    expect(start.output()).toContain("[gantry] worker stopped unexpectedly (killed by SIGKILL); restarting it in 1 s");
    const second = workerPids()[1];
    expect(second).not.toBe(first);
    expect(start.child.exitCode).toBeNull();

    // The new worker runs jobs.
    const { jobId } = await startSelftest(db, { actor, input: { steps: 2, stepMs: 10 } });
    await waitFor(async () => (await db.job.findUniqueOrThrow({ where: { id: jobId } })).status === "succeeded", { timeoutMs: 20_000, what: "the self-test to run on the new worker" });

    start.child.kill("SIGTERM");
    expect(await start.exited).toBe(0);
    expect(start.output()).toContain("[gantry] Stopped");
    expect(isAlive(second)).toBe(false);
    expect(start.output()).not.toMatch(/worker stopped unexpectedly \(exit/);
  }, 120_000);

  it("starts the embedded Postgres again when it dies, and the worker carries on with the job it was running", async () => {
    // A home the `postgres` user can reach, so the cluster lives inside it.
    const pgHome = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-start-pg-"));
    fs.chmodSync(pgHome, 0o755);
    const port = await freePort();
    const start = runStart(["--only", "worker"], { DATABASE_URL: "", GANTRY_HOME: pgHome, EMBEDDED_PG_PORT: String(port) });
    try {
      await start.waitForOutput((o) => o.includes("[worker] Worker ready"), "the database and the worker to start");
      const password = fs.readFileSync(path.join(pgHome, "pg-password"), "utf8").trim();
      const embedded = createDb(`postgresql://gantry:${encodeURIComponent(password)}@127.0.0.1:${port}/gantry`, 2);
      try {
        const { actor } = await createOrgWithMember(embedded, "operator");
        const { jobId } = await startSelftest(embedded, { actor, input: { steps: 30, stepMs: 300 } });
        await waitFor(async () => (await embedded.job.findUniqueOrThrow({ where: { id: jobId } })).step === "Step 3 of 30", { timeoutMs: 30_000, what: "the job to reach step 3" });

        const postgres = Number(/\[gantry\] postgres started \(pid (\d+)\)/.exec(start.output())![1]);
        process.kill(postgres, "SIGKILL");
        await start.waitForOutput((o) => /\[gantry\] postgres restarted \(pid \d+\)/.test(o), "Postgres to be started again");
        expect(start.output()).toContain("[gantry] postgres stopped unexpectedly (killed by SIGKILL); restarting it in 1 s");

        // The job goes on to the end on the same worker, its attempt not used up.
        const job = await waitFor(async () => {
          const j = await embedded.job.findUnique({ where: { id: jobId } }).catch(() => null);
          return j && ["succeeded", "failed", "cancelled"].includes(j.status) && j;
        }, { timeoutMs: 60_000, what: "the job to finish" });
        expect(job).toMatchObject({ status: "succeeded", progress: 1, error: null });
        const output = start.output();
        expect(output).not.toMatch(/worker stopped unexpectedly|Unhandled|ECONNREFUSED\n\s+at /);
        // One line when the database went, one when it came back.
        expect(output.match(/\[worker\] Worker: cannot reach the database/g)).toHaveLength(1);
        expect(output.match(/\[worker\] Worker: the database is reachable again after \d+ s/g)).toHaveLength(1);
      } finally {
        await embedded.$disconnect();
      }
      start.child.kill("SIGTERM");
      expect(await start.exited).toBe(0);
    } finally {
      if (start.child.exitCode === null) start.child.kill("SIGKILL");
      fs.rmSync(pgHome, { recursive: true, force: true });
    }
  }, 180_000);

  it("refuses an --only it does not know, saying what it takes", async () => {
    const start = runStart(["--only", "worker,portal"], { DATABASE_URL: database.url });
    expect(await start.exited).toBe(1);
    expect(start.output().trim()).toBe("[gantry] --only takes a comma-separated list of web, worker, serve; portal is not one");
  }, 30_000);
});
