import type { Db } from "../db";
import { AppError } from "../errors";
import type { RealtimeHub } from "../jobs/realtime";
import { RUN_LOG_CHANNEL } from "./run-log";
import type { z } from "zod";
import { FINAL_STATUSES, type runLogPieceSchema } from "./training.schemas";

// A run's log as a stream: the pieces stored after a byte offset, replayed from the database,
// then each new piece as the worker commits it (a NOTIFY names the run; the follower reads the
// database, so a missed notification costs a delay, never a line). Ends once the run has ended
// and everything it stored was sent.

export type LogPiece = z.infer<typeof runLogPieceSchema>;

const PAGE = 200;
/** Without a notification (a reconnecting LISTEN), the database is read again this often. */
const IDLE_READ_MS = 15_000;
const RECHECK_ACCESS_MS = 30_000;

export interface RunLogStreamOptions {
  db: Db;
  hub: RealtimeHub;
  orgId: string;
  runId: string;
  /** The attempt to follow (default: the run's current one). */
  attempt?: number;
  /** The byte offset of the last piece the caller has (-1: from the start). */
  after: number;
  signal: AbortSignal;
  isStillAllowed?: () => Promise<boolean>;
  watchAccess?: (changed: () => void) => () => void;
}

export async function openRunLogStream(opts: RunLogStreamOptions): Promise<AsyncGenerator<LogPiece>> {
  const run = await opts.db.trainingRun.findFirst({ where: { id: opts.runId, orgId: opts.orgId }, select: { attempt: true } });
  if (!run) throw new AppError("NOT_FOUND", "That training run does not exist in this organisation");
  return follow(opts, opts.attempt ?? run.attempt);
}

async function* follow(opts: RunLogStreamOptions, attempt: number): AsyncGenerator<LogPiece> {
  const { db, hub, runId, signal } = opts;
  let cursor = opts.after;
  let isWoken = true;
  let wake: (() => void) | null = null;
  let accessAt = Date.now();
  let isAccessChanged = false;
  const poke = () => {
    isWoken = true;
    wake?.();
  };
  const unlisten = hub.listen(RUN_LOG_CHANNEL, (payload) => {
    if (payload === null || payload === runId) poke();
  });
  const unwatch = opts.watchAccess?.(() => {
    isAccessChanged = true;
    poke();
  });
  signal.addEventListener("abort", poke, { once: true });
  const read = () => db.trainingLogChunk.findMany({ where: { runId, attempt, offset: { gt: BigInt(cursor) } }, orderBy: { offset: "asc" }, take: PAGE });
  try {
    for (;;) {
      if (signal.aborted) return;
      if (opts.isStillAllowed && (isAccessChanged || Date.now() - accessAt > RECHECK_ACCESS_MS)) {
        isAccessChanged = false;
        accessAt = Date.now();
        if (!(await opts.isStillAllowed())) return;
      }
      isWoken = false;
      const pieces = await read();
      for (const c of pieces) {
        cursor = Number(c.offset);
        yield { attempt, offset: cursor, text: c.text };
      }
      if (pieces.length === PAGE) continue;
      const run = await db.trainingRun.findUnique({ where: { id: runId }, select: { status: true, attempt: true } });
      const isOver = !run || run.attempt !== attempt || (FINAL_STATUSES as string[]).includes(run.status);
      if (isOver) {
        // What was stored before the run ended, after the read above.
        for (let more = await read(); more.length; more = await read()) {
          for (const c of more) {
            cursor = Number(c.offset);
            yield { attempt, offset: cursor, text: c.text };
          }
        }
        return;
      }
      if (!isWoken) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, IDLE_READ_MS);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
      }
    }
  } finally {
    unlisten();
    unwatch?.();
    signal.removeEventListener("abort", poke);
  }
}
