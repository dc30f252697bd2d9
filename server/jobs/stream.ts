import type { Db } from "../db";
import { AppError } from "../errors";
import type { JobEventDto } from "./jobs.schemas";
import { toJobEventDto } from "./jobs.queries";
import type { RealtimeHub, RealtimeMessage } from "./realtime";

const PAGE = 500;

export interface StreamOptions {
  db: Db;
  hub: RealtimeHub;
  orgId: string;
  signal: AbortSignal;
  /** Subscribers that fall this far behind are closed rather than buffered without limit. */
  maxBuffered: number;
}

/**
 * A job's events after `afterSeq`: first replayed from the database, then live. A gap in the
 * sequence or a reconnect of the hub is filled from the database, so nothing is skipped.
 */
export async function* streamJobEvents(opts: StreamOptions & { jobId: string; afterSeq: number }): AsyncGenerator<JobEventDto> {
  const { db, jobId, orgId } = opts;
  const job = await db.job.findFirst({ where: { id: jobId, orgId }, select: { id: true } });
  if (!job) throw new AppError("NOT_FOUND", "No such job in this organisation");
  let lastSeq = opts.afterSeq;
  const readFromDb = async () => {
    const rows = await db.jobEvent.findMany({ where: { jobId, seq: { gt: lastSeq } }, orderBy: { seq: "asc" }, take: PAGE });
    return rows.map(toJobEventDto);
  };
  for await (const item of live(opts, `job:${jobId}`, readFromDb)) {
    if (item.seq <= lastSeq) continue;
    if (item.seq > lastSeq + 1) {
      // A gap: the rows in between are in the database.
      for (const row of await readFromDb()) {
        if (row.seq > item.seq) break;
        lastSeq = row.seq;
        yield row;
      }
      if (item.seq <= lastSeq) continue;
    }
    lastSeq = item.seq;
    yield item;
  }
}

/** Every job event of an organisation after event id `afterId`, replayed then live. */
export async function* streamOrgEvents(opts: StreamOptions & { afterId: bigint }): AsyncGenerator<JobEventDto> {
  const { db, orgId } = opts;
  let lastId = opts.afterId;
  const readFromDb = async () => {
    const rows = await db.jobEvent.findMany({ where: { orgId, id: { gt: lastId } }, orderBy: { id: "asc" }, take: PAGE });
    return rows.map(toJobEventDto);
  };
  for await (const item of live(opts, `org:${orgId}`, readFromDb)) {
    const id = BigInt(item.id);
    if (id <= lastId) continue;
    lastId = id;
    yield item;
  }
}

/**
 * Subscribes before replaying so nothing falls between the two; yields replayed rows, then
 * live ones. `readFromDb` reads from the caller's current position and is used again after
 * a resync.
 */
async function* live(opts: StreamOptions, key: `job:${string}` | `org:${string}`, readFromDb: () => Promise<JobEventDto[]>): AsyncGenerator<JobEventDto> {
  const queue: RealtimeMessage[] = [];
  let wake: (() => void) | null = null;
  let isOverflowed = false;
  const notify = () => {
    wake?.();
    wake = null;
  };
  const unsubscribe = opts.hub.subscribe(key, (message) => {
    if (queue.length >= opts.maxBuffered) isOverflowed = true;
    else queue.push(message);
    notify();
  });
  opts.signal.addEventListener("abort", notify, { once: true });
  try {
    await opts.hub.ensureConnected();
    let needsRead = true;
    while (!opts.signal.aborted) {
      if (needsRead) {
        needsRead = false;
        let page: JobEventDto[];
        do {
          page = await readFromDb();
          for (const row of page) yield row;
        } while (page.length === PAGE && !opts.signal.aborted);
      }
      while (queue.length > 0 && !opts.signal.aborted) {
        const message = queue.shift()!;
        if (message.kind === "resync") {
          needsRead = true;
          break;
        }
        if (message.kind === "event") yield message.event;
      }
      if (isOverflowed) throw new AppError("RATE_LIMITED", "This event stream fell too far behind and was closed; reconnect to resume from the last event received");
      if (!needsRead && queue.length === 0 && !opts.signal.aborted) await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    unsubscribe();
    opts.signal.removeEventListener("abort", notify);
  }
}
