import path from "node:path";
import { EventEmitter } from "node:events";
import { Logger, run, runMigrations, type Runner, type WorkerEvents } from "graphile-worker";
import pg from "pg";
import { createDb } from "../server/db";
import { env } from "../server/env";
import { CANCEL_CHANNEL, cancelNotificationSchema, jobCatalog } from "../server/jobs/catalog";
import { CancellationRegistry, JobInterruptedError } from "../server/jobs/cancellation";
import { giveBackAttempts, releaseStoppedPool } from "../server/jobs/enqueue";
import { isDatabaseUnavailable, OutageLog, PatientPool } from "../server/db/availability";
import { findEntriesTakenOver, QUEUE_POLL_MS, recordHeartbeat, releaseDeadWorkers, removeHeartbeats } from "../server/system/heartbeat.service";
import { processMetrics } from "../server/metrics/process-metrics";
import { moveFoldersUnderOrgs } from "../server/datasets/org-folders.service";
import { toGraphileTask } from "./define-task";
import { scheduledTasks, taskModules } from "./tasks/index";

export interface StartedWorker {
  stop(): Promise<void>;
  /** Settles if the queue runner stops by itself (not through stop()): the worker can do no more work. */
  stopped: Promise<void>;
}

export async function prepareQueue(url: string): Promise<void> {
  await runMigrations({ connectionString: url });
}

/** Starts the queue runner, the cancel listener and the heartbeat. */
export async function startWorker({ url, concurrency = env().WORKER_CONCURRENCY, log = console.log }: { url: string; concurrency?: number; log?: (m: string) => void }): Promise<StartedWorker> {
  const missing = jobCatalog.filter((def) => !taskModules.some((m) => m.def.name === def.name));
  if (missing.length) throw new Error(`No worker task for job(s): ${missing.map((d) => d.name).join(", ")}`);

  const settings = env();
  const db = createDb(url, concurrency + 2);
  const cancellations = new CancellationRegistry();
  // Entries whose attempt is given back: interrupted by a shutdown, or by losing the database.
  const giveBack = new Set<string>();
  // Entries running here (entry id → Job id): a heartbeat checks they are still this worker's.
  const running = new Map<string, string>();
  // What scheduled tasks hold between runs (connections kept open), let go of when the worker stops.
  const onStop: (() => void)[] = [];
  const taskList = {
    ...Object.fromEntries(taskModules.map((m) => [m.def.name, toGraphileTask(m, { db, cancellations, giveBack, running })])),
    ...Object.fromEntries(Object.entries(scheduledTasks).map(([name, make]) => [name, make({ db, onStop: (close) => onStop.push(close) })])),
  };

  // This worker's own figures go to Postgres for the portal's /api/metrics to show.
  const metrics = processMetrics();
  metrics.start({ db: () => db, role: "worker" });
  metrics.add("gantry_worker_jobs_handed_on_total", {}, 0);
  metrics.add("gantry_worker_jobs_ended_total", {}, 0);
  const release = async () => {
    for (const w of await releaseDeadWorkers(db, settings.WORKER_STALE_AFTER_MS)) {
      metrics.add("gantry_worker_jobs_handed_on_total", {}, w.resumed.length);
      metrics.add("gantry_worker_jobs_ended_total", {}, w.ended.length);
      const who = w.host ? `Worker ${w.id} (${w.host}, pid ${w.pid})` : `Worker ${w.id} (which died before its first heartbeat)`;
      log(`${who} stopped without shutting down: ${w.resumed.length} job(s) handed on${w.ended.length ? `, ${w.ended.length} ended after their worker died under them on every attempt` : ""}`);
    }
  };
  try {
    await prepareQueue(url);
    await moveFoldersUnderOrgs(db, settings, log).catch((error: Error) => log(`Could not move dataset folders under their organisations: ${error.message}`));
    await release();
  } catch (error) {
    metrics.stop();
    await db.$disconnect().catch(() => {});
    throw error;
  }

  // graphile-worker locks jobs and queues under its pool's id: that is what beats.
  const poolIds = new Set<string>();
  const events = new EventEmitter() as WorkerEvents;
  events.on("pool:create", ({ workerPool }) => poolIds.add(workerPool.id));
  // Jobs added together (a rollout's devices) wake as many idle workers at once, whose
  // lookups skip each other's locked rows: some find nothing and would sleep until the next
  // poll, a second later, with jobs waiting. Right after new jobs were announced, a worker
  // that found none looks again a moment later.
  let announcedAt = 0;
  events.on("pool:listen:notification", ({ message }) => {
    if (message.channel === "jobs:insert") announcedAt = Date.now();
  });
  events.on("worker:getJob:empty", ({ worker }) => {
    if (Date.now() - announcedAt > 500) return;
    setTimeout(() => {
      try {
        worker.nudge();
      } catch {
        // it stopped meanwhile
      }
    }, 20 + Math.random() * 30).unref();
  });
  // While the database is away, one line says so, not one per connection, retry and job.
  const outage = new OutageLog("Worker", log);
  // The queue's own chatter stays out of the log; its warnings and errors do not.
  const logger = new Logger(() => (level, message, meta) => {
    // A job interrupted by shutdown is not a failure; its own log says what happened.
    if (message.includes(JobInterruptedError.MESSAGE)) return;
    if (level !== "error" && level !== "warning") return;
    // A task's failure may be any connection's (a device's SSH port); the queue's own are the database's.
    const { error, failure } = (meta ?? {}) as { error?: unknown; failure?: boolean };
    if (isDatabaseUnavailable(error, { socketErrors: !failure }) || isDatabaseUnavailable({ message })) return outage.failed({ message });
    log(`[queue] ${message}`);
  });
  // The queue's connections wait out a database that is restarting: a job's end is written
  // once it is back, rather than failing at once (which the queue does not catch, ending the process).
  const queuePool = new PatientPool({ connectionString: url, max: concurrency + 4 }, { onUnavailable: (error) => outage.failed(error) });
  // A connection the database drops is removed by pg; these say so, once per outage.
  const onPoolError = (error: Error) => (isDatabaseUnavailable(error, { socketErrors: true }) ? outage.failed(error) : log(`[queue] PostgreSQL connection error: ${error.message}`));
  queuePool.on("error", onPoolError);
  queuePool.on("connect", (client) => client.on("error", onPoolError));
  const runner: Runner = await run({ pgPool: queuePool, concurrency, taskList, noHandleSignals: true, pollInterval: QUEUE_POLL_MS, events, logger, crontabFile: path.resolve("worker/crontab") });
  events.on("job:error", ({ job, error }) => {
    if (error instanceof JobInterruptedError) return;
    if (isDatabaseUnavailable(error)) return outage.failed(error);
    log(`Job ${job.task_identifier} attempt ${job.attempts} failed: ${(error as Error)?.message ?? error}`);
  });

  const listener = await listenForCancels(url, cancellations, log, outage);
  const beat = async () => {
    try {
      if (poolIds.size) await recordHeartbeat(db, [...poolIds]);
      outage.recovered();
      // Not heard from within the window (a frozen process, a long outage), this worker was
      // taken for dead and its jobs handed on: it stops running them rather than run them twice.
      const entries = [...running.keys()];
      for (const entryId of await findEntriesTakenOver(db, entries, [...poolIds])) {
        const jobId = running.get(entryId);
        if (jobId && cancellations.abandon(jobId)) log(`Job ${jobId} was handed on to another worker while this one was not heard from (for over WORKER_STALE_AFTER_MS); this worker stops running it`);
        running.delete(entryId);
      }
      for (const id of await giveBackAttempts(db, [...giveBack], [...poolIds])) giveBack.delete(id);
      await release();
    } catch (error) {
      if (isDatabaseUnavailable(error)) outage.failed(error);
      else log(`Heartbeat failed: ${(error as Error).message}`);
    }
  };
  // The pool is created synchronously within run(); the first beat follows at once.
  await beat();
  const timer = setInterval(beat, settings.WORKER_HEARTBEAT_MS);

  let isStopping = false;
  const stopped = runner.promise.then(
    () => {
      if (!isStopping) log("The job queue stopped by itself");
    },
    (error: Error) => {
      if (!isStopping) log(`The job queue stopped: ${error.message}`);
    },
  );
  return {
    stopped: stopped.then(() => (isStopping ? new Promise<void>(() => {}) : undefined)),
    async stop() {
      isStopping = true;
      clearInterval(timer);
      // Running jobs are interrupted rather than waited for: each goes back to the queue with
      // its attempt given back, and a worker goes on with it where it stood.
      const running = cancellations.interruptAll();
      // With the database away, the queue's last writes are not waited for: a worker that
      // finds this one's heartbeat gone stale hands its jobs on.
      if (outage.isDown) queuePool.stop();
      await runner.stop();
      for (const close of onStop.splice(0)) close();
      await queuePool.end().catch(() => {});
      await listener.stop();
      try {
        const interrupted = [...giveBack];
        await releaseStoppedPool(db, [...poolIds], interrupted);
        await removeHeartbeats(db, [...poolIds]);
        if (running) log(`${interrupted.length} running job(s) interrupted; they go on when a worker runs them again`);
      } catch (error) {
        // Its heartbeat stays, so the pool is taken for dead and its jobs handed on.
        log(`Could not hand back this worker's jobs (another worker will once this one is seen to be gone): ${(error as Error).message}`);
      }
      metrics.stop();
      await metrics.flush().catch(() => {});
      await db.$disconnect();
    },
  };
}

async function listenForCancels(url: string, cancellations: CancellationRegistry, log: (m: string) => void, outage: OutageLog): Promise<{ stop(): Promise<void> }> {
  let client: pg.Client | null = null;
  let isStopped = false;
  const connect = async (attempt = 0): Promise<void> => {
    if (isStopped) return;
    const c = new pg.Client({ connectionString: url });
    c.on("notification", (n) => {
      const parsed = cancelNotificationSchema.safeParse(JSON.parse(n.payload ?? "null"));
      if (parsed.success) cancellations.cancel(parsed.data.jobId);
    });
    const retry = () => {
      if (isStopped || client !== c) return;
      client = null;
      // Missed cancels are still caught: every progress write sees the job's cancel flag.
      setTimeout(() => void connect(attempt + 1), Math.min(30_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2)).unref();
    };
    c.on("error", (e) => {
      if (isDatabaseUnavailable(e, { socketErrors: true })) outage.failed(e);
      else log(`Cancel listener: ${e.message}`);
      retry();
    });
    c.on("end", retry);
    client = c;
    try {
      await c.connect();
      await c.query(`LISTEN ${CANCEL_CHANNEL}`);
    } catch {
      retry();
    }
  };
  await connect();
  return {
    async stop() {
      isStopped = true;
      await client?.end().catch(() => {});
    },
  };
}
