import { z } from "zod";

/** Upper bounds (seconds) of the job duration histogram: a self-test's second to a long training run. */
export const durationBuckets = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21_600, 86_400] as const;

const count = z.number().int().min(0);

/** Every figure the metrics endpoint and the health page show, read together. */
export const metricsFiguresSchema = z.object({
  at: z.date(),
  workers: z.object({ live: count, stale: count }),
  /** How long a dead worker's jobs take to run elsewhere, at the latest. */
  handoffWindowSeconds: z.number(),
  jobs: z.array(z.object({ kind: z.string(), status: z.string(), count })),
  queue: z.array(z.object({ kind: z.string(), waiting: count, scheduled: count, running: count, failed: count, oldestWaitingSeconds: z.number().nullable() })),
  durations: z.object({
    buckets: z.array(z.number()),
    series: z.array(z.object({ kind: z.string(), status: z.enum(["succeeded", "failed"]), counts: z.array(count), sum: z.number(), p50: z.number().nullable(), p95: z.number().nullable() })),
  }),
  /** Jobs that ended in each of the last 60 minutes, by kind and outcome. */
  throughput: z.array(z.object({ minute: z.date(), kind: z.string(), status: z.string(), count })),
  /** Figures kept per process (uploads, rate limits, open streams), from every process still writing them. */
  processes: z.array(z.object({ process: z.string(), name: z.string(), labels: z.record(z.string(), z.string()), value: z.number() })),
});
export type MetricsFigures = z.infer<typeof metricsFiguresSchema>;
