import type { Tx } from "../db";
import { Prisma } from "../generated/prisma/client";
import { EVENTS_CHANNEL } from "./catalog";

// Every job event is written by one statement: a leading CTE `job` that changes the Job row
// and yields ("jobId", "orgId", "seq", ...), then this shared tail, which takes the next
// per-organisation sequence number, inserts the event and sends the NOTIFY.
// The Org row lock taken for the sequence orders an organisation's events by commit, so a
// stream resuming "after event N" can never miss an event that committed late.
//
// That lock is held until the commit returns, and a commit waits for its WAL to reach the disk:
// under load every event of an organisation queued behind the one before it and its flush (a
// scheduler's wait on a busy machine, not only the disk's), and job pickup and event delivery
// waited seconds. A worker's writes about the job it runs (its start, its progress, its end) are
// therefore committed without waiting for the flush: the lock is let go as the statement ends.
// Visibility and order are unchanged. What a crash of the database (not of a worker) can lose is
// the last fraction of a second of such writes, and only ever a suffix of them; the queue's own
// commit that follows a job's end (graphile-worker's, synchronous) flushes every earlier one, so
// a job never ends without its last event on disk. Queueing, cancels, retries and anything in a
// caller's transaction stay synchronous.

// The NOTIFY carries the event itself when it is small enough (nearly all are: a progress
// line), so a web process hands it on without reading it back; a longer one (a message near its
// 4000 characters) goes as ids, and is read from the database. A payload may be 8000 bytes.
const NOTICE_EVENT_MAX_BYTES = 7000;

/** Prisma keeps DateTime columns as UTC wall-clock time; raw SQL must write them the same way. */
export const UTC_NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;

export type EventLevel = "debug" | "info" | "warn" | "error";
export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface EventFields {
  message: string | Prisma.Sql;
  level?: EventLevel;
  step?: string | null;
  progress?: number | null;
  status?: JobStatus | null;
  /**
   * false: the statement's commit does not wait for the disk (synchronous_commit off for it
   * alone). Only for the worker's own writes about a job it runs, outside any transaction — see
   * below.
   */
  durable?: boolean;
}

export const clampProgress = (p: number | null | undefined) => (p == null ? null : Math.min(1, Math.max(0, p)));

/**
 * Runs `WITH <before>, job AS (<jobCte>) <tail>` and returns the `job` row with the event's
 * id; `before` holds any CTEs the job CTE reads from (data-modifying CTEs must be top level).
 */
export async function writeJobEvent<Row extends object>(tx: Tx, jobCte: Prisma.Sql, e: EventFields, before?: Prisma.Sql): Promise<(Row & { eventId: bigint; orgSeq: number }) | undefined> {
  const message = typeof e.message === "string" ? Prisma.sql`${e.message.slice(0, 4000)}::text` : e.message;
  const [row] = await tx.$queryRaw<(Row & { eventId: bigint; orgSeq: number })[]>`
    WITH ${before ? Prisma.sql`${before},` : Prisma.empty} job AS (${jobCte}),
    org AS (
      UPDATE "Org" SET "lastEventSeq" = "lastEventSeq" + 1 WHERE "id" = (SELECT "orgId" FROM job) RETURNING "lastEventSeq"
    ), event AS (
      INSERT INTO "JobEvent" ("jobId", "orgId", "seq", "orgSeq", "at", "level", "step", "progress", "status", "message")
      SELECT job."jobId", job."orgId", job."seq", org."lastEventSeq", ${UTC_NOW}, ${e.level ?? "info"}::"EventLevel",
        ${e.step ?? null}::text, ${clampProgress(e.progress)}::float8, ${e.status ?? null}::"JobStatus", ${message}
      FROM job, org
      RETURNING "id", "seq", "orgSeq", "at", "level", "step", "progress", "status", "message"
    ), notice AS (
      SELECT json_build_object('jobId', job."jobId"::text, 'orgId', job."orgId"::text, 'id', event."id"::text)::text AS ids,
        json_build_object('seq', event."seq", 'orgSeq', event."orgSeq", 'at', (extract(epoch FROM event."at") * 1000)::bigint,
          'level', event."level", 'step', event."step", 'progress', event."progress", 'status', event."status", 'message', event."message")::text AS whole
      FROM job, event
    )
    SELECT job.*, event."id" AS "eventId", event."orgSeq",
      pg_notify(${EVENTS_CHANNEL}, CASE WHEN octet_length(notice.whole) <= ${NOTICE_EVENT_MAX_BYTES}
        THEN left(notice.ids, -1) || ', "event" : ' || notice.whole || '}' ELSE notice.ids END)::text AS "notified"
      ${e.durable === false ? Prisma.sql`, set_config('synchronous_commit', 'off', true) AS "commitMode"` : Prisma.empty}
    FROM job, event, notice`;
  return row;
}
