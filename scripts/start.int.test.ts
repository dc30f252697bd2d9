import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../server/db";
import { startSelftest } from "../server/system/selftest.service";
import { createOrgWithMember, waitFor } from "../tests/helpers/factories";
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

function runStart(args: string[], env: NodeJS.ProcessEnv) {
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
    const start = runStart(["--only", "worker"], { DATABASE_URL: database.url });
    const workerPids = () => [...start.output().matchAll(/\[gantry\] worker (?:started|restarted) \(pid (\d+)\)/g)].map((m) => Number(m[1]));
    await start.waitForOutput((o) => o.includes("[worker] Worker ready"), "the worker to start");
    const [first] = workerPids();
    expect(first).toBeGreaterThan(0);

    process.kill(first, "SIGKILL");
    await start.waitForOutput((o) => workerPids().length === 2 && o.split("[worker] Worker ready").length === 3, "the worker to come back");
    expect(start.output()).toContain("[gantry] worker stopped unexpectedly (killed by SIGKILL); restarting it in 1 s");
    const second = workerPids()[1];
    expect(second).not.toBe(first);
    expect(start.child.exitCode).toBeNull();

    // The new worker runs jobs.
    const { actor } = await createOrgWithMember(db, "operator");
    const { jobId } = await startSelftest(db, { actor, input: { steps: 2, stepMs: 10 } });
    await waitFor(async () => (await db.job.findUniqueOrThrow({ where: { id: jobId } })).status === "succeeded", { timeoutMs: 20_000, what: "the self-test to run on the new worker" });

    start.child.kill("SIGTERM");
    expect(await start.exited).toBe(0);
    expect(start.output()).toContain("[gantry] Stopped");
    expect(isAlive(second)).toBe(false);
    expect(start.output()).not.toMatch(/worker stopped unexpectedly \(exit/);
  }, 120_000);

  it("refuses an --only it does not know, saying what it takes", async () => {
    const start = runStart(["--only", "worker,portal"], { DATABASE_URL: database.url });
    expect(await start.exited).toBe(1);
    expect(start.output().trim()).toBe("[gantry] --only takes a comma-separated list of web, worker, serve; portal is not one");
  }, 30_000);
});
