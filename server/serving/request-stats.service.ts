import type { Tx } from "../db";
import { AppError } from "../errors";
import { checkRole, type OrgActor } from "../auth/roles";
import { estimatePercentileMs, latencyBuckets } from "./metrics";
import type { EndpointRequestStats } from "./request-stats.schemas";

// Reads the per-minute request statistics the model servers write (request-stats.recorder.ts)
// for the endpoint page: one entry per minute of the window, and totals whose percentiles come
// from the merged latency histograms (percentiles themselves cannot be averaged).

const MINUTE_MS = 60_000;

export async function getEndpointRequestStats(db: Tx, { actor, endpointId, minutes = 60 }: { actor: OrgActor; endpointId: string; minutes?: number }): Promise<EndpointRequestStats> {
  checkRole(actor, "viewer");
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1_440) throw new AppError("BAD_REQUEST", "Ask for between 1 and 1440 minutes of request statistics");
  const endpoint = await db.endpoint.findFirst({ where: { id: endpointId, orgId: actor.orgId }, select: { id: true } });
  if (!endpoint) throw new AppError("NOT_FOUND", "There is no such endpoint in this organisation; it may have been deleted");

  const current = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS;
  const from = current - (minutes - 1) * MINUTE_MS;
  const [rows, last] = await Promise.all([
    db.endpointRequestMinute.findMany({ where: { endpointId, minute: { gte: new Date(from) } }, orderBy: { minute: "asc" } }),
    db.endpointRequestMinute.findFirst({ where: { endpointId, requests: { gt: 0 } }, orderBy: { minute: "desc" }, select: { minute: true, lastRequestAt: true } }),
  ]);
  const byMinute = new Map(rows.map((r) => [r.minute.getTime(), r]));
  const merged = new Array<number>(latencyBuckets.length + 1).fill(0);
  const totals = { requests: 0, errors: 0 };
  const series = Array.from({ length: minutes }, (_, i) => {
    const at = from + i * MINUTE_MS;
    const row = byMinute.get(at);
    if (!row) return { at: new Date(at), requests: 0, errors: 0, p50Ms: null, p95Ms: null };
    row.buckets.forEach((c, j) => {
      if (j < merged.length) merged[j] += c;
    });
    totals.requests += row.requests;
    totals.errors += row.errors;
    return { at: new Date(at), requests: row.requests, errors: row.errors, p50Ms: estimatePercentileMs(row.buckets, 50), p95Ms: estimatePercentileMs(row.buckets, 95) };
  });
  return {
    minutes: series,
    totals: { ...totals, p50Ms: estimatePercentileMs(merged, 50), p95Ms: estimatePercentileMs(merged, 95) },
    // Rows written before the time itself was kept know only their minute.
    lastRequestAt: last ? (last.lastRequestAt ?? last.minute) : null,
  };
}
