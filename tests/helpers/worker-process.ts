import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { Db } from "../../server/db";
import { waitFor } from "./factories";

// A real worker process (`worker/index.ts`, as `npm start` runs it) on a test's own database,
// with a quick heartbeat so a killed one is found dead within seconds.

export interface WorkerProcess {
  child: ChildProcess;
  /** Everything it printed so far. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once it says "Worker ready". */
  ready: Promise<void>;
}

export function startWorkerProcess(databaseUrl: string, { env = {}, detached = false, tracked }: { env?: Record<string, string>; detached?: boolean; tracked: ChildProcess[] }): WorkerProcess {
  const child = spawn(process.execPath, ["--import", "tsx", path.resolve("worker/index.ts")], {
    env: { ...process.env, DATABASE_URL: databaseUrl, WORKER_HEARTBEAT_MS: "300", WORKER_STALE_AFTER_MS: "1500", WORKER_CONCURRENCY: "2", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached,
  });
  tracked.push(child);
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const ready = waitFor(async () => output.includes("Worker ready"), { timeoutMs: 30_000, what: "the worker to start" }).then(() => {});
  // Only callers that wait for it care when it never comes.
  ready.catch(() => {});
  return { child, output: () => output, exited, ready };
}

/**
 * The live worker among `workers` whose pool holds the queue entry of job `jobId` (Gantry's job
 * id, which the entry's payload names), if any.
 */
export async function lockHolder(db: Db, jobId: string, workers: WorkerProcess[]): Promise<WorkerProcess | undefined> {
  const [row] = await db.$queryRaw<{ pid: number }[]>`
    SELECT h."pid" FROM graphile_worker._private_jobs j JOIN "WorkerHeartbeat" h ON h."id" = j.locked_by
    WHERE j.payload->>'jobId' = ${jobId}`;
  return row ? workers.find((w) => w.child.pid === row.pid && w.child.exitCode === null && w.child.signalCode === null) : undefined;
}
