import type { Db } from "../db";
import { isStoredStep, parseMetricsLine } from "./command";

// The run's log as read from the host: bytes after the stored offset, kept up to the last line
// end (a line still being written waits for the next read), written with the new offset in one
// transaction guarded by the old one — so a reconnect, or two readers, neither lose nor repeat
// a line. LeRobot's periodic lines become metrics; the printed step is rounded ("2K"), so the
// exact step is the previous one plus log_freq when that fits the rounding.

/** NOTIFY channel: a run's log has a new piece (payload: the run id). */
export const RUN_LOG_CHANNEL = "gantry_training_log";

/** Past this many unread bytes in a cut log, only the tail is read (for the metrics). */
const TAIL_WHEN_CUT = 64 * 1024;

export interface AppendResult {
  /** More bytes wait on the host. */
  hasMore: boolean;
  lastStep: number | null;
}

interface RunRef {
  id: string;
  logFreq: number;
}

export function exactStep(printed: number, previous: number | null, logFreq: number, stepText: string): number {
  if (/^\d+$/.test(stepText)) return printed;
  const next = (previous ?? 0) + logFreq;
  // format_big_number keeps three significant figures or so: "2K" may be 1950..2049.
  const tolerance = Math.max(logFreq, printed * 0.05);
  if (Math.abs(next - printed) <= tolerance) return next;
  return Math.round(printed / logFreq) * logFreq;
}

/**
 * The metrics of every complete line of a piece of log, after `lastStep`: a step that goes back
 * (a line printed again) or that no Int column holds is not a metrics line.
 */
export function readMetrics(text: string, lastStep: number | null, logFreq: number): { metrics: { step: number; values: Record<string, number> }[]; step: number | null } {
  const metrics: { step: number; values: Record<string, number> }[] = [];
  let step = lastStep;
  for (const line of text.split(/\r\n|\n|\r/)) {
    const parsed = parseMetricsLine(line);
    if (!parsed) continue;
    const exact = exactStep(parsed.values.step, step, logFreq, parsed.stepText);
    if (!isStoredStep(exact) || (step !== null && exact <= step)) continue;
    step = exact;
    metrics.push({ step: exact, values: { ...parsed.values, step: exact } });
  }
  return { metrics, step };
}

export async function appendLog(
  db: Db,
  { run, attempt, offset, bytes, logSize, isFinal, maxBytes, truncated, lastStep }: { run: RunRef; attempt: number; offset: number; bytes: Buffer; logSize: number; isFinal: boolean; maxBytes: number; truncated: boolean; lastStep: number | null },
): Promise<AppendResult> {
  const start = offset;
  let data = bytes;
  // A cut log is not read through: jump to its tail, from the next line on.
  if (truncated && logSize - offset > 4 * TAIL_WHEN_CUT) {
    await db.trainingRun.updateMany({ where: { id: run.id, logOffset: BigInt(offset) }, data: { logOffset: BigInt(logSize - TAIL_WHEN_CUT) } });
    return { hasMore: true, lastStep };
  }
  let end = data.length;
  if (!isFinal) {
    const lastEnd = Math.max(data.lastIndexOf(0x0a), data.lastIndexOf(0x0d));
    end = lastEnd + 1;
  }
  if (end <= 0) return { hasMore: false, lastStep };
  data = data.subarray(0, end);
  const text = data.toString("utf8").replace(/\0/g, "\uFFFD");

  const { metrics, step } = readMetrics(text, lastStep, run.logFreq);

  const storeUpTo = truncated ? 0 : Math.max(0, Math.min(data.length, maxBytes - start));
  const cutNow = !truncated && storeUpTo < data.length;
  await db.$transaction(async (tx) => {
    const moved = await tx.trainingRun.updateMany({
      where: { id: run.id, logOffset: BigInt(start) },
      data: {
        logOffset: BigInt(start + data.length),
        ...(cutNow ? { logTruncated: true } : {}),
        ...(metrics.length ? { lastStep: step, lastMetrics: metrics.at(-1)!.values } : {}),
      },
    });
    if (moved.count === 0) return; // another reader got here first: what it stored stands
    if (storeUpTo > 0) {
      const stored = cutNow ? data.subarray(0, storeUpTo) : data;
      await tx.trainingLogChunk.create({ data: { runId: run.id, attempt, offset: BigInt(start), text: stored.toString("utf8").replace(/\0/g, "\uFFFD") } });
    }
    if (cutNow) {
      await tx.trainingLogChunk.create({ data: { runId: run.id, attempt, offset: BigInt(start + storeUpTo), text: `\n[Gantry: this log passed ${(maxBytes / 1024 ** 2).toFixed(0)} MB; the rest is not stored here. The whole log stays on the host in the run's folder, train.log.]\n` } });
    }
    if (metrics.length) await tx.trainingMetric.createMany({ data: metrics.map((m) => ({ runId: run.id, kind: "train", step: m.step, values: m.values })) });
    // Followers of the log (its event stream) read the new piece as this commits.
    if (storeUpTo > 0 || cutNow) await tx.$executeRaw`SELECT pg_notify(${RUN_LOG_CHANNEL}, ${run.id})`;
  });
  return { hasMore: start + data.length < logSize, lastStep: step };
}

export async function recordGpuSample(db: Db, runId: string, step: number, gpu: { util: number; memUsedMiB: number; memTotalMiB: number }): Promise<void> {
  await db.trainingMetric.create({ data: { runId, kind: "gpu", step, values: { util: gpu.util, mem_used_mib: gpu.memUsedMiB, mem_total_mib: gpu.memTotalMiB } } });
}
