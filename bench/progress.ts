import crypto from "node:crypto";
import { once } from "node:events";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { Logger, makeWorkerUtils, run, type Task } from "graphile-worker";
import pg from "pg";
import { z } from "zod";
import type { JobDef } from "../server/jobs/catalog";
import { compare, percentile, printResults, type BenchResult } from "./lib/stats";

// `npx tsx bench/progress.ts` — the job system's two latencies, each beside what it is built on:
//   pickup:   our enqueue() → our task handler starting, against graphile-worker's addJob → a
//             trivial task starting, interleaved on one runner with the worker's settings;
//   delivery: a progress write committed → the event parsed by each of N clients of the real SSE
//             route, against a bare LISTEN client receiving a raw pg_notify, timed from sending
//             the statement (its commit lies within that round trip, and is not seen apart).
// The writer (standing in for the worker process) and the clients (for browsers) run in threads
// of their own, so neither delays the server's event loop nor is delayed by it; every time is
// process.hrtime, one clock across threads.

const PICKUP_SAMPLES = 200;
const PICKUP_WARMUP = 20;
const SUBSCRIBERS = [1, 100, 1000];
/** Progress at a pace a busy job reports at; the raw floor needs no pause between notifies. */
const OURS_PACE: Pace = { count: 100, intervalMs: 100 };
const RAW_PACE: Pace = { count: 100, intervalMs: 20 };
const WARMUP_EVENTS = 5;
const RAW_CHANNEL = "gantry_bench_raw";

const now = () => Number(process.hrtime.bigint()) / 1e6;
const p50 = (values: ArrayLike<number>) => percentile(values, 50);
const p99 = (values: ArrayLike<number>) => percentile(values, 99);

type Role = "clients" | "producer";
type JobRef = { id: string; orgId: string };
type Pace = { count: number; intervalMs: number };
/** To the clients' thread: open N SSE streams, or one bare LISTEN; to the producer: write the events. */
type Command =
  | { type: "open"; port: number; path: string; token: string; n: number; count: number }
  | { type: "listen"; url: string; count: number }
  | { type: "collect" }
  | { type: "emit"; url: string; job: JobRef | null; pace: Pace };
type Reply = { type: "ready" } | { type: "arrivals"; times: Float64Array } | { type: "commits"; times: Float64Array } | { type: "failed"; message: string };

// ---------------------------------------------------------------- pickup

const benchJob = { name: "bench.pickup", title: "Pickup benchmark", payload: z.object({ sample: z.number().int() }), maxAttempts: 1 } satisfies JobDef;
const REFERENCE_TASK = "bench.reference";

async function benchPickup(url: string, orgId: string): Promise<BenchResult[]> {
  const [{ db, createDb }, { env }, { enqueue }, { defineTask, toGraphileTask }, { CancellationRegistry }] = await Promise.all([
    import("../server/db"), import("../server/env"), import("../server/jobs/enqueue"), import("../worker/define-task"), import("../server/jobs/cancellation"),
  ]);
  // startWorker's task list is the catalog and takes no bench job, so this composes what it
  // composes: graphile-worker → toGraphileTask → runJob (reads the Job row, marks it running,
  // appends "Started") → the handler, on a runner with startWorker's settings. The crontab and
  // heartbeat it also starts are not on the path from enqueue to a task.
  const concurrency = env().WORKER_CONCURRENCY;
  const workerDb = createDb(url, concurrency + 2);
  const marks = { dispatched: NaN, started: NaN };
  let onDone: (error?: Error) => void = () => {};
  const ours = toGraphileTask(defineTask(benchJob, async () => void (marks.started = now())), { db: workerDb, cancellations: new CancellationRegistry() });
  const taskList: Record<string, Task> = {
    [benchJob.name]: async (payload, helpers) => {
      marks.dispatched = now();
      await ours(payload, helpers);
      onDone();
    },
    [REFERENCE_TASK]: async () => {
      marks.dispatched = marks.started = now();
      onDone();
    },
  };
  const logger = new Logger(() => (level, message) => (level === "error" || level === "warning") && console.warn(`[queue] ${message}`));
  const runner = await run({ connectionString: url, concurrency, taskList, noHandleSignals: true, pollInterval: 1000, logger });
  const utils = await makeWorkerUtils({ connectionString: url, logger });

  const sample = async (add: () => Promise<unknown>) => {
    marks.dispatched = marks.started = NaN;
    const done = new Promise<void>((resolve, reject) => (onDone = (error) => (error ? reject(error) : resolve())));
    const t0 = now();
    await add();
    const committed = now();
    const timer = setTimeout(() => onDone(new Error("A pickup sample's task did not run within 10 s")), 10_000);
    await done.finally(() => clearTimeout(timer));
    await sleep(5); // the queue records the completion before the next sample
    return { total: marks.started - t0, enqueue: committed - t0, toTask: marks.dispatched - committed, toHandler: marks.started - marks.dispatched };
  };
  const ourSamples: Awaited<ReturnType<typeof sample>>[] = [];
  const refSamples: typeof ourSamples = [];
  try {
    for (let i = 0; i < PICKUP_WARMUP + PICKUP_SAMPLES; i++) {
      // Interleaved, so both see the same moments of the machine.
      const o = await sample(() => db().$transaction((tx) => enqueue(benchJob, { sample: i }, { tx, orgId })));
      const r = await sample(() => utils.addJob(REFERENCE_TASK, { sample: i }));
      if (i >= PICKUP_WARMUP) ourSamples.push(o), refSamples.push(r);
    }
  } finally {
    await runner.stop();
    await utils.release();
    await workerDb.$disconnect();
  }
  const median = (key: keyof (typeof ourSamples)[number], of = ourSamples) => p50(of.map((s) => s[key])).toFixed(1);
  console.log(`  ours p50: enqueue transaction ${median("enqueue")} ms, commit → task ${median("toTask")} ms, task → handler (runJob) ${median("toHandler")} ms`);
  console.log(`  graphile-worker p50: addJob ${median("enqueue", refSamples)} ms, → task ${median("toTask", refSamples)} ms`);
  const ourTotal = ourSamples.map((s) => s.total), refTotal = refSamples.map((s) => s.total);
  return [compare("pickup-p50", p50(ourTotal), p50(refTotal), "ms", "≤ 10 ms"), compare("pickup-p99", p99(ourTotal), p99(refTotal), "ms")];
}

// ---------------------------------------------------------------- delivery

type RouteHandler = (request: Request, ctx: { params: Promise<{ id: string }> }) => Promise<Response>;

/** node:http in front of the real route handler, as Next's server puts it: Request in, body piped out. */
async function serveRoute(handler: RouteHandler, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const match = /^\/api\/jobs\/([^/?]+)\/events(?:\?|$)/.exec(req.url ?? "");
  if (!match || req.method !== "GET") return void res.writeHead(404).end();
  const closed = new AbortController();
  res.on("close", () => closed.abort());
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  const response = await handler(new Request(`http://127.0.0.1${req.url}`, { headers, signal: closed.signal }), { params: Promise.resolve({ id: decodeURIComponent(match[1]) }) });
  res.writeHead(response.status, Object.fromEntries(response.headers));
  const reader = response.body?.getReader();
  for (let chunk = await reader?.read(); chunk && !chunk.done; chunk = await reader!.read()) res.write(chunk.value);
  res.end();
}

class NoReplyError extends Error {}

/** A thread running this file in another role, with a queue of its replies. */
function startThread(role: Role) {
  // A worker thread does not inherit tsx's loader on Node 20: it registers it, then loads this file.
  const boot = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(boot, { eval: true, workerData: role });
  const inbox: Reply[] = [];
  let wake = () => {};
  worker.on("message", (m: Reply) => (inbox.push(m), wake()));
  worker.on("error", (error) => (inbox.push({ type: "failed", message: error.message }), wake()));
  return {
    send: (command: Command) => worker.postMessage(command),
    async receive<K extends Reply["type"]>(type: K, timeoutMs: number): Promise<Extract<Reply, { type: K }>> {
      const deadline = now() + timeoutMs;
      while (inbox.length === 0 && now() < deadline) await new Promise<void>((resolve) => ((wake = resolve), setTimeout(resolve, deadline - now()).unref()));
      const m = inbox.shift();
      if (!m) throw new NoReplyError(`The ${role} thread sent no ${type} within ${timeoutMs / 1000} s`);
      if (m.type !== type) throw new Error(`The ${role} thread ${m.type === "failed" ? `failed: ${m.message}` : `sent ${m.type}, expected ${type}`}`);
      return m as Extract<Reply, { type: K }>;
    },
    stop: () => worker.terminate(),
  };
}

async function benchDelivery(url: string, orgId: string, token: string): Promise<BenchResult[]> {
  const [{ db }, { enqueue }, { selftestJob }, { GET }] = await Promise.all([
    import("../server/db"), import("../server/jobs/enqueue"), import("../server/jobs/catalog"), import("@/app/api/jobs/[id]/events/route"),
  ]);
  const server = http.createServer((req, res) => void serveRoute(GET, req, res).catch(() => res.destroy()));
  server.listen({ host: "127.0.0.1", port: 0, backlog: 2048 });
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  const clients = startThread("clients");
  const producer = startThread("producer");

  /** Latency of every (client, event) pair from the write's commit; a lost event counts as NaN. */
  const measure = async (listen: Command, job: JobRef | null, pace: Pace): Promise<Float64Array> => {
    clients.send(listen);
    await clients.receive("ready", 180_000);
    producer.send({ type: "emit", url, job, pace });
    const commits = (await producer.receive("commits", 120_000)).times;
    const arrivals = await clients.receive("arrivals", 10_000).catch((error: Error) => {
      if (!(error instanceof NoReplyError)) throw error;
      clients.send({ type: "collect" }); // some events were lost: take what arrived
      return clients.receive("arrivals", 10_000);
    });
    const latencies = arrivals.times.map((at, k) => at - commits[k % pace.count]);
    const lost = latencies.filter(Number.isNaN).length;
    if (lost) console.log(`  ${lost} of ${latencies.length} events never arrived`);
    return latencies;
  };

  const results: BenchResult[] = [];
  try {
    for (const n of SUBSCRIBERS) {
      // A job no worker runs: the producer writes its progress, as its task would.
      const { jobId } = await db().$transaction((tx) => enqueue(selftestJob, { steps: 1, stepMs: 0 }, { tx, orgId, runAt: new Date(Date.now() + 3_600_000) }));
      const startedAt = now();
      const ours = await measure({ type: "open", port, path: `/api/jobs/${jobId}/events`, token, n, count: OURS_PACE.count }, { id: jobId, orgId }, OURS_PACE);
      const raw = await measure({ type: "listen", url, count: RAW_PACE.count }, null, RAW_PACE);
      console.log(`  ${n} subscriber(s): p50 ${p50(ours).toFixed(1)} ms, p90 ${percentile(ours, 90).toFixed(1)} ms, max ${percentile(ours, 100).toFixed(1)} ms (row took ${((now() - startedAt) / 1000).toFixed(1)} s)`);
      results.push(compare(`delivery-${n}-p50`, p50(ours), p50(raw), "ms"), compare(`delivery-${n}-p99`, p99(ours), p99(raw), "ms", n === 1000 ? "≤ 100 ms" : undefined));
    }
  } finally {
    await Promise.all([clients.stop(), producer.stop()]);
    server.closeAllConnections();
    server.close();
  }
  return results;
}

// ---------------------------------------------------------------- the other threads

type Port = NonNullable<typeof parentPort>;

/** Writes events at a steady pace with our progress reporter, or (no job) as bare pg_notify calls. */
function runProducer(port: Port): void {
  port.on("message", async (m: Command) => {
    if (m.type !== "emit") return;
    try {
      /** Writes event i; resolves to when its latency counts from (default: when it resolved). */
      let write: (i: number) => Promise<number | void>;
      let close: () => Promise<void>;
      if (m.job) {
        const [{ createDb }, { createProgressReporter }] = await Promise.all([import("../server/db"), import("../server/jobs/progress")]);
        const db = createDb(m.url, 2);
        const reporter = createProgressReporter(db, m.job);
        write = (i) => reporter.log(`bench ${i} sent-at ${now().toFixed(3)}`);
        close = () => db.$disconnect();
      } else {
        const client = new pg.Client({ connectionString: m.url });
        await client.connect();
        write = async (i) => {
          const sentAt = now();
          await client.query("SELECT pg_notify($1, $2)", [RAW_CHANNEL, String(i)]);
          return sentAt;
        };
        close = () => client.end();
      }
      const { count, intervalMs } = m.pace;
      const commits = new Float64Array(count);
      const start = now();
      try {
        // Negative indexes warm up and are not measured.
        for (let i = -WARMUP_EVENTS; i < count; i++) {
          await sleep(Math.max(0, start + (i + WARMUP_EVENTS) * intervalMs - now()));
          const from = (await write(i)) ?? now();
          if (i >= 0) commits[i] = from;
        }
      } finally {
        await close();
      }
      port.postMessage({ type: "commits", times: commits } satisfies Reply);
    } catch (error) {
      port.postMessage({ type: "failed", message: (error as Error).message } satisfies Reply);
    }
  });
}

/** N SSE clients of one job, or one bare LISTEN client; reports when each event arrived. */
function runClients(port: Port): void {
  let arrivals = new Float64Array(0);
  let count = 0;
  let remaining = 0;
  const closers: (() => void)[] = [];
  const finish = () => {
    for (const close of closers.splice(0)) close();
    if (remaining < 0) return;
    remaining = -1;
    port.postMessage({ type: "arrivals", times: arrivals } satisfies Reply);
  };
  const record = (client: number, index: number) => {
    const slot = client * count + index;
    if (index < 0 || index >= count || !Number.isNaN(arrivals[slot])) return;
    arrivals[slot] = now();
    if (--remaining === 0) finish();
  };
  port.on("message", async (m: Command) => {
    if (m.type === "collect") return finish();
    if (m.type === "emit") return;
    const n = m.type === "open" ? m.n : 1;
    count = m.count;
    arrivals = new Float64Array(n * count).fill(NaN);
    remaining = n * count;
    try {
      if (m.type === "open") {
        for (let first = 0; first < n; first += 100) {
          await Promise.all(Array.from({ length: Math.min(100, n - first) }, (_, k) => openStream(m, first + k, record, closers)));
        }
      } else {
        const client = new pg.Client({ connectionString: m.url });
        closers.push(() => void client.end().catch(() => {}));
        client.on("notification", (note) => note.channel === RAW_CHANNEL && record(0, Number(note.payload)));
        await client.connect();
        await client.query(`LISTEN ${RAW_CHANNEL}`);
      }
      port.postMessage({ type: "ready" } satisfies Reply);
    } catch (error) {
      port.postMessage({ type: "failed", message: (error as Error).message } satisfies Reply);
    }
  });
}

/** One SSE client, reading as EventSource does; resolves once the replayed "Queued" event is in. */
function openStream(m: Extract<Command, { type: "open" }>, client: number, record: (client: number, index: number) => void, closers: (() => void)[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: m.port, path: m.path, agent: false, headers: { accept: "text/event-stream", authorization: `Bearer ${m.token}` } });
    closers.push(() => req.destroy());
    req.on("error", reject);
    req.on("response", (res) => {
      res.on("error", () => {});
      if (res.statusCode !== 200) return reject(new Error(`the SSE route answered ${res.statusCode}`));
      res.setEncoding("utf8");
      let buffer = "";
      res.on("data", (chunk: string) => {
        buffer += chunk;
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").find((line) => line.startsWith("data: "))?.slice(6);
          if (data === undefined) continue;
          if (!block.includes("event: job")) return reject(new Error(`the SSE route sent an error: ${data}`));
          const event = JSON.parse(data) as { seq: number; message: string };
          if (event.seq === 1) resolve();
          const index = /^bench (\d+) /.exec(event.message)?.[1];
          if (index !== undefined) record(client, Number(index));
        }
      });
    });
    req.end();
  });
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const { createTestDatabase } = await import("../tests/setup/test-database");
  const database = await createTestDatabase("bench");
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-bench-"));
  // Settings are read once, on first use: set before anything reads them (threads copy them).
  Object.assign(process.env, { DATABASE_URL: database.url, GANTRY_HOME: home, AUTH_SECRET: crypto.randomBytes(32).toString("base64url"), ENCRYPTION_KEY: crypto.randomBytes(32).toString("base64") });
  const [{ db }, { realtimeHub }, { createOrgWithMember }, { createApiToken }] = await Promise.all([
    import("../server/db"), import("../server/jobs/hub"), import("../tests/helpers/factories"), import("../server/auth/tokens.service"),
  ]);
  const results: BenchResult[] = [];
  try {
    const { actor } = await createOrgWithMember(db(), "operator");
    const { token } = await createApiToken(db(), { actor, input: { name: "bench", scopes: ["read"] } });
    console.log(`pickup: ${PICKUP_SAMPLES} sequential samples each, after ${PICKUP_WARMUP} to warm up`);
    results.push(...(await benchPickup(database.url, actor.orgId)));
    console.log(`delivery: ${OURS_PACE.count} events, one every ${OURS_PACE.intervalMs} ms, to ${SUBSCRIBERS.join(", ")} subscriber(s); raw: ${RAW_PACE.count} notifies`);
    results.push(...(await benchDelivery(database.url, actor.orgId, token)));
  } finally {
    await realtimeHub().stop();
    await db().$disconnect();
    await database.drop();
    fs.rmSync(home, { recursive: true, force: true });
  }
  printResults("progress", results);
}

if (isMainThread) {
  await main();
  process.exit(0); // a stray handle must not keep a finished benchmark alive
} else if ((workerData as Role) === "clients") {
  runClients(parentPort!);
} else {
  runProducer(parentPort!);
}
