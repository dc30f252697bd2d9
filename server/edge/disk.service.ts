import fs from "node:fs";
import type { Db } from "../db";
import { raiseAlert } from "../alerts/alerts.service";

/** Free bytes for an unprivileged writer on the filesystem holding `dir` (created if missing). */
export async function freeDiskBytes(dir: string): Promise<number> {
  await fs.promises.mkdir(dir, { recursive: true });
  const stats = await fs.promises.statfs(dir);
  return stats.bavail * stats.bsize;
}

export function formatBytes(bytes: number): string {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export interface DiskVerdict {
  isRefused: boolean;
  freeBytes: number;
  message: string;
}

/**
 * Whether an upload of `incomingBytes` may start: its files (unpacked as they arrive, never stored
 * twice) must still leave `minFreeBytes` free.
 */
export async function checkUploadDisk({ dir, minFreeBytes, incomingBytes }: { dir: string; minFreeBytes: number; incomingBytes: number }): Promise<DiskVerdict> {
  const freeBytes = await freeDiskBytes(dir);
  const after = freeBytes - incomingBytes;
  if (after >= minFreeBytes) return { isRefused: false, freeBytes, message: "" };
  return {
    isRefused: true,
    freeBytes,
    message:
      `The portal's upload disk is nearly full: ${formatBytes(freeBytes)} free, and this upload would leave less than the ` +
      `${formatBytes(minFreeBytes)} minimum (EDGE_MIN_FREE_DISK_BYTES). New uploads are refused until space is freed: ` +
      `delete raw episodes or datasets that are no longer needed, or give the portal a bigger disk. Nothing already uploaded was lost.`,
  };
}

const ALERT_KIND = "edge.disk_low";
// One open alert per organisation and hour is enough to tell people; every refused upload is not news.
const ALERT_EVERY_MS = 60 * 60 * 1000;

/** Tells the organisation its uploads are being refused for disk space, at most once an hour. */
export async function alertDiskLow(db: Db, { orgId, message }: { orgId: string; message: string }): Promise<void> {
  const recent = await db.alert.findFirst({ where: { orgId, kind: ALERT_KIND, acknowledgedAt: null, createdAt: { gt: new Date(Date.now() - ALERT_EVERY_MS) } }, select: { id: true } });
  if (recent) return;
  await raiseAlert(db, { orgId, kind: ALERT_KIND, severity: "critical", title: "Edge uploads refused: disk nearly full", message, target: "edge:uploads" });
}
