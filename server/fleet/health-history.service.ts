import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import type { DeviceState, deviceHealthHistoryInput, deviceHealthHistorySchema } from "./fleet.schemas";

// A device's health over time: the samples the health rounds write, kept for
// HEALTH_SAMPLES_KEPT.days and at most HEALTH_SAMPLES_KEPT.perDevice per device (at the
// default one check a minute the two agree; a shorter interval is held by the count), and
// read for its chart in at most MAX_POINTS time buckets, so fourteen days of checks every few
// seconds stay one small answer.

export const HEALTH_SAMPLES_KEPT = { days: 14, perDevice: 20_160 };
const MAX_POINTS = 720;
const STATE_RANK: DeviceState[] = ["online", "unknown", "degraded", "offline"];

/**
 * Deletes samples older than `days`, and for each of `deviceIds` (the devices a round just
 * checked) the samples beyond its newest `perDevice`.
 */
export async function pruneHealthSamples(db: Db | Tx, { deviceIds, now = new Date(), keep = HEALTH_SAMPLES_KEPT }: { deviceIds: string[]; now?: Date; keep?: { days: number; perDevice: number } }): Promise<{ deleted: number }> {
  const old = await db.deviceHealthSample.deleteMany({ where: { at: { lt: new Date(now.getTime() - keep.days * 86_400_000) } } });
  if (deviceIds.length === 0) return { deleted: old.count };
  // Per device, the newest sample past the limit (found along the (deviceId, at) index) and every one before it.
  const over = await db.$executeRaw`
    DELETE FROM "DeviceHealthSample" s
    USING unnest(${deviceIds}::uuid[]) AS d(id)
    CROSS JOIN LATERAL (
      SELECT x."at", x."id" FROM "DeviceHealthSample" x WHERE x."deviceId" = d.id ORDER BY x."at" DESC, x."id" DESC OFFSET ${keep.perDevice} LIMIT 1
    ) c
    WHERE s."deviceId" = d.id AND (s."at", s."id") <= (c."at", c."id")`;
  return { deleted: old.count + over };
}

type History = z.infer<typeof deviceHealthHistorySchema>;

/**
 * The device's samples of the last `hours`, oldest first. When there are more checks than
 * points, each point is the worst of its bucket's checks: the worst state, the highest load and
 * check time, the least free memory and disk, and the latest error.
 */
export async function getDeviceHealthHistory(db: Db | Tx, { orgId, input, intervalSec, now = new Date() }: { orgId: string; input: z.infer<typeof deviceHealthHistoryInput>; intervalSec: number; now?: Date }): Promise<History> {
  const device = await db.device.findFirst({ where: { id: input.deviceId, orgId }, select: { id: true } });
  if (!device) throw new AppError("NOT_FOUND", "That device does not exist in this organisation");
  const from = new Date(now.getTime() - input.hours * 3_600_000);
  const bucketSec = Math.max(1, Math.ceil((input.hours * 3600) / MAX_POINTS));
  const rows = await db.$queryRaw<{ at: Date; checks: number; worst: number; load1: number | null; memoryAvailableBytes: number | null; diskFreeBytes: number | null; latencyMs: number | null; error: string | null }[]>`
    SELECT max("at") AS "at",
      count(*)::int AS "checks",
      max(CASE "state" WHEN 'offline' THEN 3 WHEN 'degraded' THEN 2 WHEN 'unknown' THEN 1 ELSE 0 END)::int AS "worst",
      max("load1") AS "load1",
      min("memoryAvailableBytes")::float8 AS "memoryAvailableBytes",
      min("diskFreeBytes")::float8 AS "diskFreeBytes",
      max("latencyMs")::int AS "latencyMs",
      (array_agg("error" ORDER BY "at" DESC) FILTER (WHERE "error" IS NOT NULL))[1] AS "error"
    FROM "DeviceHealthSample"
    WHERE "deviceId" = ${device.id}::uuid
      AND "at" >= to_timestamp(${from.getTime() / 1000}) AT TIME ZONE 'UTC' AND "at" <= to_timestamp(${now.getTime() / 1000}) AT TIME ZONE 'UTC'
    GROUP BY floor(extract(epoch FROM "at") / ${bucketSec})
    ORDER BY 1`;
  return {
    from,
    to: now,
    bucketSec,
    intervalSec,
    points: rows.map((r) => ({ at: r.at, checks: r.checks, state: STATE_RANK[r.worst], load1: r.load1, memoryAvailableBytes: r.memoryAvailableBytes, diskFreeBytes: r.diskFreeBytes, latencyMs: r.latencyMs, error: r.error })),
  };
}
