import type { Db } from "../db";
import { shortReason } from "../db/availability";
import { Prisma } from "../generated/prisma/client";
import { latencyBucketIndex, latencyBuckets, type Outcome } from "./metrics";

// The model server's side of the request statistics: each request is counted in memory, per
// endpoint per UTC minute (a map lookup and a few additions, nothing else on the request's
// path), and a timer flushes the counts every few seconds with one upsert that ADDS to the
// stored row, so several model-server processes serving the same endpoint sum up correctly.

const MINUTE_MS = 60_000;
/** Counts a flush could not write are retried, but not kept past this age. */
const KEEP_UNWRITTEN_MS = 60 * MINUTE_MS;
/** Rows older than this are deleted (the endpoint page asks for a day at most). */
const RETENTION_MS = 2 * 24 * 60 * MINUTE_MS;
const PRUNE_EVERY_MS = 60 * MINUTE_MS;

interface Pending {
  endpointId: string;
  minute: number;
  requests: number;
  errors: number;
  buckets: number[];
  sumSeconds: number;
  /** When the minute's last request was answered (epoch ms): the endpoint page's "last request". */
  lastAt: number;
}

export class RequestStatsRecorder {
  private pending = new Map<string, Pending>();
  /** Each endpoint's count its last request went to (one of `pending`), so the next one of the same minute builds no key. */
  private readonly latest = new Map<string, Pending>();
  private flushing: Promise<void> | null = null;
  private lastPrune = 0;
  /** Set while writes fail: they are said once, and once when they work again. */
  private failingSince: number | null = null;

  constructor(
    private readonly db: Db,
    private readonly log: (message: string) => void = () => {},
  ) {}

  record(endpointId: string, outcome: Outcome, seconds: number, now = Date.now()): void {
    let p = this.latest.get(endpointId);
    if (p === undefined || now < p.minute || now - p.minute >= MINUTE_MS) {
      const minute = now - (now % MINUTE_MS);
      const key = `${endpointId}/${minute}`;
      p = this.pending.get(key);
      if (!p) {
        p = { endpointId, minute, requests: 0, errors: 0, buckets: new Array<number>(latencyBuckets.length + 1).fill(0), sumSeconds: 0, lastAt: now };
        this.pending.set(key, p);
      }
      this.latest.set(endpointId, p);
    }
    p.requests++;
    if (outcome !== "success") p.errors++;
    p.buckets[latencyBucketIndex(seconds)]++;
    p.sumSeconds += seconds;
    if (now > p.lastAt) p.lastAt = now;
  }

  get isFlushing(): boolean {
    return this.flushing !== null;
  }

  /**
   * Writes what was counted up to now; a flush called during another runs after it, so
   * nothing counted before the call is left behind. Failures are kept for the next flush.
   */
  flush(): Promise<void> {
    const next = (this.flushing ?? Promise.resolve()).then(() => this.write());
    const settled: Promise<void> = next.then(
      () => {},
      () => {},
    ).finally(() => {
      if (this.flushing === settled) this.flushing = null;
    });
    this.flushing = settled;
    return next;
  }

  private async write(): Promise<void> {
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.latest.clear();
    if (batch.length > 0) {
      // A fixed order, so two processes upserting the same rows cannot deadlock.
      batch.sort((a, b) => (a.endpointId === b.endpointId ? a.minute - b.minute : a.endpointId < b.endpointId ? -1 : 1));
      const values = Prisma.join(batch.map((p) => Prisma.sql`(${p.endpointId}, ${new Date(p.minute).toISOString()}, ${p.requests}, ${p.errors}, ${`{${p.buckets.join(",")}}`}, ${p.sumSeconds}, ${new Date(p.lastAt).toISOString()})`));
      try {
        // Joined with Endpoint: counts of an endpoint deleted meanwhile are dropped, not an error.
        await this.db.$executeRaw`
          INSERT INTO "EndpointRequestMinute" ("endpointId", "minute", "requests", "errors", "buckets", "sumSeconds", "lastRequestAt")
          SELECT v.id::uuid, v.minute::timestamp(3), v.requests::int, v.errors::int, v.buckets::int[], v.seconds::float8, v.last::timestamp(3)
          FROM (VALUES ${values}) AS v(id, minute, requests, errors, buckets, seconds, last)
          JOIN "Endpoint" e ON e."id" = v.id::uuid
          ON CONFLICT ("endpointId", "minute") DO UPDATE SET
            "requests" = "EndpointRequestMinute"."requests" + EXCLUDED."requests",
            "errors" = "EndpointRequestMinute"."errors" + EXCLUDED."errors",
            "buckets" = ARRAY(
              SELECT COALESCE(a, 0) + COALESCE(b, 0)
              FROM unnest("EndpointRequestMinute"."buckets", EXCLUDED."buckets") WITH ORDINALITY AS u(a, b, i)
              ORDER BY i),
            "sumSeconds" = "EndpointRequestMinute"."sumSeconds" + EXCLUDED."sumSeconds",
            "lastRequestAt" = GREATEST("EndpointRequestMinute"."lastRequestAt", EXCLUDED."lastRequestAt")`;
        if (this.failingSince !== null) {
          this.log(`Request statistics are written again (after ${Math.round((Date.now() - this.failingSince) / 1000)} s)`);
          this.failingSince = null;
        }
      } catch (error) {
        // Requests are not affected: their counts wait here (an hour's worth at most) for the next flush.
        const keepFrom = Date.now() - KEEP_UNWRITTEN_MS;
        for (const p of batch) if (p.minute >= keepFrom) this.merge(p);
        if (this.failingSince === null) {
          this.failingSince = Date.now();
          this.log(`Could not write request statistics; keeping up to an hour of them to write once it works again: ${shortReason(error)}`);
        }
      }
    }
    if (Date.now() - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = Date.now();
      await this.db.endpointRequestMinute.deleteMany({ where: { minute: { lt: new Date(Date.now() - RETENTION_MS) } } }).catch(() => {});
    }
  }

  private merge(p: Pending) {
    const key = `${p.endpointId}/${p.minute}`;
    const current = this.pending.get(key);
    if (!current) return void this.pending.set(key, p);
    current.requests += p.requests;
    current.errors += p.errors;
    current.sumSeconds += p.sumSeconds;
    current.lastAt = Math.max(current.lastAt, p.lastAt);
    p.buckets.forEach((c, i) => (current.buckets[i] += c));
  }
}
