import { AccessRecheck, type StreamAccessOptions } from "../auth/access-recheck";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { JobEventDto } from "./jobs.schemas";
import { toJobEventDto } from "./jobs.queries";
import type { RealtimeHub, RealtimeMessage } from "./realtime";

const PAGE = 500;
const RECHECK_MS = 30_000;

/**
 * With `whyNotAllowed`, the caller's access is asked once listening, then every 30 s while the
 * stream is open, and at once when `watchAccess` says it may have changed (a sign-out, a revoked
 * token, a removed member); losing it ends the stream with FORBIDDEN, saying why.
 */
export interface StreamOptions extends StreamAccessOptions {
  db: Db;
  hub: RealtimeHub;
  orgId: string;
  signal: AbortSignal;
  /**
   * Live events a subscriber may have waiting; past this it stops buffering and catches up
   * from the database instead, so a slow reader costs no memory and loses nothing.
   */
  maxBuffered: number;
}

const ENDED = new Set(["succeeded", "failed", "cancelled"]);

/**
 * A job's events after `afterSeq`: replayed from the database, then live, ending with the
 * job's final event (at once when the job had ended before `afterSeq`). Checks the job
 * belongs to the organisation before the first event, so a caller can answer 404 up front.
 * Yields batches: the events that were waiting together, in order.
 */
export async function openJobEventBatches(opts: StreamOptions & { jobId: string; afterSeq: number }): Promise<AsyncGenerator<JobEventDto[]>> {
  const job = await opts.db.job.findFirst({ where: { id: opts.jobId, orgId: opts.orgId }, select: { id: true, status: true, lastSeq: true } });
  if (!job) throw new AppError("NOT_FOUND", "No such job in this organisation");
  if (ENDED.has(job.status) && job.lastSeq <= opts.afterSeq) return (async function* () {})();
  return untilEnded(opts, follow(opts, `job:${opts.jobId}`, opts.afterSeq, (e) => e.seq, (after) => ({ jobId: opts.jobId, seq: { gt: after } }), { seq: "asc" }));
}

/** The same events one at a time. */
export async function openJobEventStream(opts: StreamOptions & { jobId: string; afterSeq: number }): Promise<AsyncGenerator<JobEventDto>> {
  return oneByOne(await openJobEventBatches(opts));
}

/** Passes a job's events on and stops after the one that ends it (unless a retry followed it). */
async function* untilEnded(opts: StreamOptions & { jobId: string }, batches: AsyncGenerator<JobEventDto[]>): AsyncGenerator<JobEventDto[]> {
  try {
    for (;;) {
      const next = await batches.next();
      if (next.done) return;
      const out: JobEventDto[] = [];
      for (const event of next.value) {
        out.push(event);
        if (event.status && ENDED.has(event.status)) {
          const job = await opts.db.job.findUnique({ where: { id: opts.jobId }, select: { lastSeq: true } });
          if (!job || job.lastSeq <= event.seq) {
            yield out;
            return;
          }
        }
      }
      yield out;
    }
  } finally {
    await batches.return(undefined);
  }
}

/**
 * Every job event of an organisation after its event number `afterOrgSeq`, replayed then
 * live; without one, from now on (the caller has just loaded the current state). Yields
 * batches: the events that were waiting together, in order.
 */
export async function openOrgEventBatches(opts: StreamOptions & { afterOrgSeq: number | null }): Promise<AsyncGenerator<JobEventDto[]>> {
  const after = opts.afterOrgSeq ?? (await opts.db.org.findUnique({ where: { id: opts.orgId }, select: { lastEventSeq: true } }))?.lastEventSeq ?? 0;
  return follow(opts, `org:${opts.orgId}`, after, (e) => e.orgSeq, (a) => ({ orgId: opts.orgId, orgSeq: { gt: a } }), { orgSeq: "asc" }, (a, limit) => opts.hub.recentOrgEvents(opts.orgId, a, limit));
}

/** The same events one at a time. */
export async function openOrgEventStream(opts: StreamOptions & { afterOrgSeq: number | null }): Promise<AsyncGenerator<JobEventDto>> {
  return oneByOne(await openOrgEventBatches(opts));
}

async function* oneByOne<T>(batches: AsyncGenerator<T[]>): AsyncGenerator<T> {
  try {
    for await (const batch of batches) yield* batch;
  } finally {
    await batches.return(undefined);
  }
}

/**
 * Yields events numbered contiguously by `position`, starting after `start`, in batches: a
 * page read from the database, or the live events waiting when the reader asked. Subscribes
 * before the first read so nothing falls between replay and live; a gap in the numbers, a
 * hub reconnect or an overflow is filled by reading the database from the last position.
 */
async function* follow(
  opts: StreamOptions,
  key: `job:${string}` | `org:${string}`,
  start: number,
  position: (e: JobEventDto) => number,
  after: (position: number) => object,
  orderBy: object,
  /** The events after a position from what the hub read lately, or null when it cannot say: then the database is read. */
  recent?: (position: number, limit: number) => JobEventDto[] | null,
): AsyncGenerator<JobEventDto[]> {
  const { db, hub, signal } = opts;
  let last = start;
  const queue: JobEventDto[] = [];
  let needsRead = true;
  let wake: (() => void) | null = null;
  const notify = () => {
    wake?.();
    wake = null;
  };
  const unsubscribe = hub.subscribe(key, (message: RealtimeMessage) => {
    if (message.kind === "resync" || queue.length >= opts.maxBuffered) {
      queue.length = 0;
      needsRead = true;
    } else {
      queue.push(message.event);
    }
    notify();
  });
  signal.addEventListener("abort", notify, { once: true });
  // The first check comes once the hub listens, so a change made between the caller's
  // authentication and then is not missed; later ones every 30 s or when told.
  const access = new AccessRecheck({ whyNotAllowed: opts.whyNotAllowed, watchAccess: opts.watchAccess, everyMs: RECHECK_MS, what: "These events" }, notify);
  let hasJustRead = false;
  try {
    await hub.ensureConnected();
    while (!signal.aborted) {
      await access.check();
      if (needsRead) {
        needsRead = false;
        hasJustRead = true;
        for (;;) {
          const events = recent?.(last, PAGE) ?? (await db.jobEvent.findMany({ where: after(last), orderBy, take: PAGE })).map(toJobEventDto);
          if (events.length) {
            last = position(events.at(-1)!);
            yield events;
          }
          if (events.length < PAGE || signal.aborted) break;
        }
        continue;
      }
      if (queue.length) {
        const batch: JobEventDto[] = [];
        let taken = 0;
        for (; taken < queue.length; taken++) {
          const p = position(queue[taken]);
          if (p <= last) continue; // already replayed
          // A gap: the events in between committed first, so they are in the database. A gap
          // that a fresh read did not fill is a deleted job's events: move past it.
          if (p > last + 1 && !hasJustRead) {
            needsRead = true;
            break;
          }
          hasJustRead = false;
          last = p;
          batch.push(queue[taken]);
        }
        queue.splice(0, taken);
        if (batch.length) yield batch;
        continue;
      }
      hasJustRead = false;
      await new Promise<void>((resolve) => {
        // What came while this turn awaited (an abort, a live event, a resync) woke nobody: not waited for.
        if (signal.aborted || queue.length || needsRead) return resolve();
        const due = access.msUntilDue();
        const timer = Number.isFinite(due) ? setTimeout(resolve, due) : undefined;
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    unsubscribe();
    access.stop();
    signal.removeEventListener("abort", notify);
  }
}
