import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";

// `npx tsx bench/scale.ts` — the portal as a team runs it at scale, on this machine: two web
// processes (scripts/web.ts on the production build) and two worker processes against one
// Postgres, no sticky routing. Under load for BENCH_WARMUP_SECONDS (15), not measured, then
// BENCH_SECONDS (60), measured:
//   - BENCH_SUBSCRIBERS (200) clients hold the organisation's event stream (/api/events),
//     half on each web process;
//   - BENCH_JOBS_PER_S (50) jobs a second are queued (a one-step self-test each), as the API
//     queues them, and the two workers take them.
// Measured: job pickup (a job's start minus its queueing, both the database's clock), event
// delivery (a subscriber's receipt minus the event's time), jobs lost (queued but not
// succeeded once the queue has drained), and the most Postgres connections seen at once.
// The warm-up is the same load on processes just started (code compiled on first use, pools
// opening): its delivery is printed as context, not judged — a portal runs for days, and what
// its users see under load is the warm processes' figures.
// The goals are absolute, so each row's reference is its goal and a ratio ≤ 1 meets it.

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 15);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 200);
const JOBS_PER_S = Number(process.env.BENCH_JOBS_PER_S ?? 50);
const DRAIN_TIMEOUT_MS = 120_000;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-bench-scale-"));
process.env.GANTRY_HOME ??= path.join(tmp, "home");

const { createTestDatabase } = await import("../tests/setup/test-database");
const { createOrgWithMember } = await import("../tests/helpers/factories");
const { freePort } = await import("../tests/helpers/sshd-rig");
const { createDb } = await import("../server/db");
const { createApiToken } = await import("../server/auth/tokens.service");
const { enqueue } = await import("../server/jobs/enqueue");
const { selftestJob } = await import("../server/jobs/catalog");
const { buildPortalIfNeeded } = await import("../scripts/portal-build");
const { busyCpuSeconds, compare, percentile, printResults, processCpuSeconds } = await import("./lib/stats");
const { monitorEventLoopDelay } = await import("node:perf_hooks");

const children: ChildProcess[] = [];
const webs: ChildProcess[] = [];
const workers: ChildProcess[] = [];

/** A child process that resolves once it prints `readyLine`; its output is kept for a failure's message. */
function startProcess(name: string, args: string[], env: NodeJS.ProcessEnv, readyLine: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      output = (output + d.toString()).slice(-8000);
      if (readyLine.test(output)) resolve(child);
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`${name} exited (${code}) while starting:\n${output}`)));
    setTimeout(() => reject(new Error(`${name} did not start within 120 s:\n${output}`)), 120_000).unref();
  });
}

/** Delivery latencies of events timed before `measuredFrom` (the warm-up) and after. */
interface Latencies {
  measuredFrom: number;
  warmup: number[];
  measured: number[];
}

/**
 * One subscriber: reads the event stream and records, for every event, how long after its time
 * it arrived (taken as its bytes come off the socket). A plain `node:http` reader that scans the
 * bytes for what it needs: two hundred of them read tens of thousands of events a second beside
 * the portal on the same two cores, so the client's own parsing must cost next to nothing, or it
 * is what the delivery figure measures.
 */
function subscribe(url: string, token: string, latencies: Latencies, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" }, signal }, (response) => {
      if (response.statusCode !== 200) {
        reject(new Error(`${url}: ${response.statusCode}`));
        response.resume();
        return;
      }
      let buffered = "";
      response.on("data", (chunk: Buffer) => {
        const now = Date.now();
        // The frames are ASCII up to the event's time, which is all that is read of them.
        buffered += chunk.toString("latin1");
        let start = 0;
        let end: number;
        while ((end = buffered.indexOf("\n\n", start)) !== -1) {
          const kind = buffered.indexOf("event: job\n", start);
          const at = buffered.indexOf('"at":"', start);
          if (kind !== -1 && kind < end && at !== -1 && at < end) {
            const eventAt = Date.parse(buffered.slice(at + 6, buffered.indexOf('"', at + 6)));
            (eventAt < latencies.measuredFrom ? latencies.warmup : latencies.measured).push(now - eventAt);
          }
          start = end + 2;
        }
        buffered = buffered.slice(start);
      });
      response.on("end", () => resolve());
      response.on("error", (error) => (signal.aborted ? resolve() : reject(error)));
    });
    request.on("error", (error) => (signal.aborted ? resolve() : reject(error)));
  });
}

async function main() {
  const database = await createTestDatabase("bench_scale");
  const db = createDb(database.url, 4);
  const monitor = new pg.Client({ connectionString: database.url });
  await monitor.connect();
  const stop = new AbortController();
  try {
    const childEnv: NodeJS.ProcessEnv = { DATABASE_URL: database.url, GANTRY_HOME: process.env.GANTRY_HOME!, NODE_ENV: "production", NEXT_TELEMETRY_DISABLED: "1" };
    buildPortalIfNeeded({ ...process.env, ...childEnv }, (m) => console.error(m));
    const ports = [await freePort(), await freePort()];
    await Promise.all([
      ...ports.map((port, i) => startProcess(`web ${i + 1}`, ["scripts/web.ts"], { ...childEnv, PORT: String(port) }, /Portal listening/).then((c) => webs.push(c))),
      ...[1, 2].map((i) => startProcess(`worker ${i}`, ["worker/index.ts"], childEnv, /Worker ready/).then((c) => workers.push(c))),
    ]);

    const { actor } = await createOrgWithMember(db, "owner");
    const { token } = await createApiToken(db, { actor, input: { name: "bench", scopes: ["read"] } });
    const latencies: Latencies = { measuredFrom: Infinity, warmup: [], measured: [] };
    const streams = Array.from({ length: SUBSCRIBERS }, (_, i) => subscribe(`http://127.0.0.1:${ports[i % 2]}/api/events`, token, latencies, stop.signal));
    streams.forEach((s) => s.catch(() => {}));
    await sleep(2000); // every stream open and listening before the first job

    let maxConnections = 0;
    const sampling = setInterval(() => {
      monitor.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()").then(
        (r) => (maxConnections = Math.max(maxConnections, r.rows[0].n as number)),
        () => {},
      );
    }, 250);

    // Where the machine's cores go while under load: each kind of process's CPU time, and how
    // late this process (the subscribers' client) ran its callbacks.
    const backendPids = async () => (await monitor.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")).rows.map((r) => r.pid as number);
    const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + (fs.existsSync(`/proc/${pid}/stat`) ? processCpuSeconds(pid) : 0), 0);
    const cpuAtStart = new Map<number, number>();
    let cpuBefore = { web: 0, workers: 0, client: 0, machine: 0 };
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    let loadStart = 0;
    /** From the warm-up's end on: what the figures are measured over. */
    const startMeasuring = async () => {
      for (const pid of await backendPids()) cpuAtStart.set(pid, cpuOf([pid]));
      cpuBefore = { web: cpuOf(webs.map((c) => c.pid!)), workers: cpuOf(workers.map((c) => c.pid!)), client: processCpuSeconds(), machine: busyCpuSeconds() };
      loopDelay.enable();
      loadStart = performance.now();
      latencies.measuredFrom = Date.now();
    };

    console.error(`Queueing ${JOBS_PER_S} jobs/s for ${WARMUP_SECONDS} s of warm-up, then ${SECONDS} s measured; ${SUBSCRIBERS} subscribers on 2 web processes, 2 workers…`);
    const jobIds: string[] = [];
    const start = performance.now();
    const warmupJobs = WARMUP_SECONDS * JOBS_PER_S;
    const total = warmupJobs + SECONDS * JOBS_PER_S;
    const queueing: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      if (i === warmupJobs) await startMeasuring();
      const due = start + (i * 1000) / JOBS_PER_S;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      queueing.push(enqueue(selftestJob, { steps: 1, stepMs: 0 }, { tx: db, orgId: actor.orgId, createdById: actor.userId }).then(({ jobId }) => void jobIds.push(jobId)));
    }
    await Promise.all(queueing);
    const queuedFor = (performance.now() - start) / 1000;

    const drainDeadline = Date.now() + DRAIN_TIMEOUT_MS;
    let open = Infinity;
    while (open > 0 && Date.now() < drainDeadline) {
      open = await db.job.count({ where: { orgId: actor.orgId, status: { in: ["queued", "running"] } } });
      if (open > 0) await sleep(500);
    }
    await sleep(1000); // the last events on their way to the subscribers
    clearInterval(sampling);
    loopDelay.disable();
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const backendCpu = (await backendPids()).reduce((sum, pid) => sum + cpuOf([pid]) - (cpuAtStart.get(pid) ?? 0), 0);
    const cores = (seconds: number) => Math.round((seconds / loadSeconds) * 100) / 100;
    const cpu = {
      web: cores(cpuOf(webs.map((c) => c.pid!)) - cpuBefore.web),
      workers: cores(cpuOf(workers.map((c) => c.pid!)) - cpuBefore.workers),
      postgres: cores(backendCpu),
      client: cores(processCpuSeconds() - cpuBefore.client),
      machine: cores(busyCpuSeconds() - cpuBefore.machine),
    };

    const rows = await db.job.findMany({ where: { id: { in: jobIds } }, select: { status: true, createdAt: true, startedAt: true } });
    // Jobs queued after the warm-up (the database's clock and this one are the machine's).
    const pickups = rows.filter((r) => r.startedAt && r.createdAt.getTime() >= latencies.measuredFrom).map((r) => r.startedAt!.getTime() - r.createdAt.getTime());
    const lost = total - rows.filter((r) => r.status === "succeeded").length;
    const delivered = latencies.warmup.length + latencies.measured.length;
    // Of the events timed after the warm-up (a stream opened without Last-Event-ID starts from
    // the moment it opens, and on processes just started some open after the first events).
    const eventsPerSubscriber = latencies.measured.length / SUBSCRIBERS;
    const eventsWritten = await db.jobEvent.count({ where: { orgId: actor.orgId, at: { gte: new Date(latencies.measuredFrom) } } });
    console.error(`Queued ${total} jobs in ${queuedFor.toFixed(1)} s; ${rows.length} rows, ${lost} not succeeded; ${delivered} events delivered (${eventsPerSubscriber.toFixed(0)} per subscriber)`);

    printResults("scale", [
      compare(`job pickup p99 (${JOBS_PER_S} jobs/s, 2 workers)`, percentile(pickups, 99), 50, "ms", "≤ 50 ms"),
      compare("job pickup p50", percentile(pickups, 50), 50, "ms", "context: the median"),
      compare(`event delivery p99 (${SUBSCRIBERS} subscribers, 2 web processes)`, percentile(latencies.measured, 99), 200, "ms", "≤ 200 ms"),
      compare("event delivery p50", percentile(latencies.measured, 50), 200, "ms", "context: the median"),
      compare(`event delivery p99 in the first ${WARMUP_SECONDS} s`, percentile(latencies.warmup, 99), 200, "ms", "context: processes just started, not measured"),
      compare("jobs lost", lost, 0, "jobs", "= 0"),
      compare("Postgres connections, most at once", maxConnections, 60, "connections", "≤ 60"),
      compare("events each subscriber received vs events written, after the warm-up", eventsPerSubscriber, eventsWritten, "events", "context: 1× means no subscriber missed one"),
      compare("CPU, the two web processes", cpu.web, os.availableParallelism(), "cores", "context: cores busy on average under load, of the machine's"),
      compare("CPU, the two workers", cpu.workers, os.availableParallelism(), "cores", "context: cores busy on average under load, of the machine's"),
      compare("CPU, Postgres (this database's backends)", cpu.postgres, os.availableParallelism(), "cores", "context: cores busy on average under load, of the machine's"),
      compare("CPU, this client (the 200 subscribers and the queueing)", cpu.client, os.availableParallelism(), "cores", "context: cores busy on average under load, of the machine's"),
      compare("CPU, the whole machine", cpu.machine, os.availableParallelism(), "cores", "context: near 1× the machine is saturated, and every figure above waits its turn"),
      compare("this client's event-loop delay p99", loopDelay.percentile(99) / 1e6, 200, "ms", "context: how late the subscribers' client read what had arrived"),
    ]);
  } finally {
    stop.abort();
    for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
    await Promise.all(children.map((c) => (c.exitCode === null ? Promise.race([new Promise((r) => c.once("exit", r)), sleep(10_000)]) : null)));
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await monitor.end().catch(() => {});
    await db.$disconnect();
    await database.drop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
