import os from "node:os";
import { db as sharedDb, type Db } from "../db";
import { UTC_NOW } from "../jobs/job-events.sql";
import type { Labels } from "./exposition";

// Counters and gauges only one process can see (bytes it received, streams it holds open,
// requests it refused). Behind a load balancer a scrape lands on any web process, and the
// worker has no HTTP port, so each process writes its own figures to "ProcessMetric" every
// FLUSH_MS and whichever process answers a scrape reads every process's rows, each with a
// `process` label. A process that stops writing drops out after STALE_AFTER_MS.

export const FLUSH_MS = 5_000;
export const STALE_AFTER_MS = 3 * FLUSH_MS;
/** Rows of processes gone this long are deleted. */
const PRUNE_AFTER_MS = 24 * 60 * 60_000;
/** How often a process prunes the series of processes gone that long (not on every flush). */
const PRUNE_EVERY_MS = 60 * 60_000;

export type ProcessRole = "web" | "worker";

/** The per-process series and what each means: the one list the exposition's HELP lines come from. */
export const processSeries = {
  gantry_upload_bytes_total: { type: "counter", help: "Bytes received in uploads by this process, by kind: edge (agents' episodes), model (ONNX uploads), capture_frame (camera frames)." },
  gantry_rate_limit_refusals_total: { type: "counter", help: "Requests this process refused because a rate limit was reached, by limit." },
  gantry_sse_subscribers: { type: "gauge", help: "Server-sent event streams this process holds open now, by stream: job, agent, joints, log, or a tRPC subscription's procedure (jobs.onOrgEvents and others)." },
  gantry_worker_jobs_handed_on_total: { type: "counter", help: "Jobs this worker found held by a dead worker and handed on to run again." },
  gantry_worker_jobs_ended_total: { type: "counter", help: "Jobs this worker ended failed because the worker running them died on every attempt." },
} as const;
export type ProcessSeriesName = keyof typeof processSeries;

interface Series {
  name: ProcessSeriesName;
  labels: string;
  value: number;
}

/** Labels as stored: JSON with sorted keys, so one series is always one row. */
export const labelKey = (labels: Labels = {}) => JSON.stringify(Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))));

export class ProcessMetrics {
  private readonly series = new Map<string, Series>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private flushing: Promise<void> | null = null;
  private db: (() => Db) | null = null;
  private role: ProcessRole = "web";
  private name: string | null = null;
  private prunedAt = 0;
  /** What the `process` label says: role, host and pid. */
  get id(): string {
    return this.name ?? `${this.role}:${os.hostname()}:${process.pid}`;
  }

  add(name: ProcessSeriesName, labels: Labels, by = 1): void {
    const key = `${name}${labelKey(labels)}`;
    const s = this.series.get(key);
    if (s) s.value += by;
    else this.series.set(key, { name, labels: labelKey(labels), value: by });
    this.ensureFlushing();
  }

  /** This process's value of one series (0 when never recorded). */
  value(name: ProcessSeriesName, labels: Labels = {}): number {
    return this.series.get(`${name}${labelKey(labels)}`)?.value ?? 0;
  }

  /**
   * Writes every series every FLUSH_MS from now on. A web process starts on its first figure
   * with the shared client; the worker starts it itself with its own.
   */
  start({ db, role, name }: { db: () => Db; role: ProcessRole; name?: string }): void {
    this.db = db;
    this.role = role;
    this.name = name ?? null;
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush().catch(() => {}), FLUSH_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private ensureFlushing(): void {
    if (this.timer) return;
    // Lazily, so a module that only counts pulls in no database client until it must.
    this.start({ db: sharedDb, role: this.role });
  }

  /** Writes this process's series now (a scrape calls it, so its own figures are current). */
  async flush(): Promise<void> {
    if (!this.db || !this.series.size) return;
    // One write at a time: a slow database gets no pile of them.
    this.flushing ??= this.write(this.db()).finally(() => (this.flushing = null));
    await this.flushing;
  }

  private async write(db: Db): Promise<void> {
    const rows = [...this.series.values()];
    await db.$executeRaw`
      INSERT INTO "ProcessMetric" ("process", "name", "labels", "value", "updatedAt")
      SELECT ${this.id}, s.name, s.labels, s.value, ${UTC_NOW}
      FROM unnest(${rows.map((r) => r.name)}::text[], ${rows.map((r) => r.labels)}::text[], ${rows.map((r) => r.value)}::float8[]) AS s(name, labels, value)
      ON CONFLICT ("process", "name", "labels") DO UPDATE SET "value" = EXCLUDED."value", "updatedAt" = EXCLUDED."updatedAt"`;
    if (Date.now() - this.prunedAt < PRUNE_EVERY_MS) return;
    this.prunedAt = Date.now();
    await db.$executeRaw`DELETE FROM "ProcessMetric" WHERE "updatedAt" < ${UTC_NOW} - make_interval(secs => ${PRUNE_AFTER_MS / 1000})`;
  }
}

const globalForMetrics = globalThis as unknown as { gantryProcessMetrics?: ProcessMetrics };

/** The process's one registry (on globalThis: Next may load this module more than once). */
export function processMetrics(): ProcessMetrics {
  globalForMetrics.gantryProcessMetrics ??= new ProcessMetrics();
  return globalForMetrics.gantryProcessMetrics;
}

export interface ProcessMetricRow {
  process: string;
  name: string;
  labels: Labels;
  value: number;
}

/** Every live process's series. */
export async function readProcessMetrics(db: Db, staleAfterMs = STALE_AFTER_MS): Promise<ProcessMetricRow[]> {
  const rows = await db.$queryRaw<{ process: string; name: string; labels: string; value: number }[]>`
    SELECT "process", "name", "labels", "value" FROM "ProcessMetric"
    WHERE "updatedAt" >= ${UTC_NOW} - make_interval(secs => ${staleAfterMs / 1000})
    ORDER BY "name", "process", "labels"`;
  return rows.filter((r) => r.name in processSeries).map((r) => ({ ...r, labels: JSON.parse(r.labels) as Labels }));
}

/** Bytes an upload brought in, counted as they pass. */
export function countUploadBytes(kind: "edge" | "model" | "capture_frame", bytes: number): void {
  if (bytes > 0) processMetrics().add("gantry_upload_bytes_total", { kind }, bytes);
}

export function countRateLimitRefusal(limit: string): void {
  processMetrics().add("gantry_rate_limit_refusals_total", { limit });
}

/** Counts an open event stream; call what it returns once when the stream ends. */
export function openSseSubscriber(stream: string): () => void {
  processMetrics().add("gantry_sse_subscribers", { stream }, 1);
  let isClosed = false;
  return () => {
    if (isClosed) return;
    isClosed = true;
    processMetrics().add("gantry_sse_subscribers", { stream }, -1);
  };
}
