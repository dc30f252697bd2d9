import net from "node:net";
import type { Db } from "../db";
import { checkHost } from "../security/outbound";
import { env } from "../env";
import { AppError } from "../errors";
import { raiseAlert } from "../alerts/alerts.service";
import { HostKeyChangedError } from "../ssh/ssh-client";
import type { SshPool } from "../ssh/ssh-pool";
import { probeDevice, sshTargetOf, versionOfSha } from "./device-probe";
import type { DeviceFacts } from "./fleet.schemas";
import { pruneHealthSamples } from "./health-history.service";

// The scheduled health check: every device whose last check is older than
// DEVICE_HEALTH_INTERVAL is probed over a kept-open connection and gets a sample:
//   online    reachable, and the device's health command exits 0
//   degraded  reachable but the health command fails, the disk is nearly full, or the
//             host key no longer matches (reachable, but not trusted) — always with the reason
//   offline   no SSH connection
// A device that goes offline raises an alert once, not on every check. Each check leaves a
// sample (state, load, free memory and disk, how long it took, the reason) for the device's
// health chart; every round prunes them (health-history.service.ts says how long they stay).

const CONCURRENCY = 8;
const LOW_DISK_BYTES = 200 * 1024 * 1024;

/** One round over every device due a check (or only `orgId`'s), then the samples pruned. */
export async function checkDueDevices(db: Db, { pool, intervalSec = env().DEVICE_HEALTH_INTERVAL, now = new Date(), orgId, keep }: { pool: SshPool; intervalSec?: number; now?: Date; orgId?: string; keep?: { days: number; perDevice: number } }): Promise<{ checked: number }> {
  // A little slack so a check scheduled on the minute is not skipped for being a second early.
  const cutoff = new Date(now.getTime() - intervalSec * 1000 + 2000);
  const due = await db.device.findMany({ where: { ...(orgId ? { orgId } : {}), OR: [{ lastCheckAt: null }, { lastCheckAt: { lt: cutoff } }] }, orderBy: { lastCheckAt: { sort: "asc", nulls: "first" } }, take: 500 });
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, due.length) }, async () => {
      while (next < due.length) await checkDevice(db, due[next++], pool).catch((error) => console.error(`Health check of a device failed: ${(error as Error).message}`));
    }),
  );
  await pruneHealthSamples(db, { deviceIds: due.map((d) => d.id), now, keep });
  return { checked: due.length };
}

/** Connects to the SSH port and waits for the server's banner; AppError when none comes. */
async function expectSshBanner(host: string, port: number, name: string, timeoutMs = 5000): Promise<void> {
  const { address } = await checkHost(host, "device");
  const ok = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: address, port });
    const done = (value: boolean) => {
      socket.destroy();
      resolve(value);
    };
    socket.once("data", (d: Buffer) => done(d.toString("latin1").startsWith("SSH-")));
    socket.once("error", () => done(false));
    socket.once("close", () => done(false));
    socket.setTimeout(timeoutMs, () => done(false));
  });
  if (!ok) throw new AppError("INTERNAL", `${name} (${host}:${port}) did not answer as an SSH server; check that it is on and its sshd runs`);
}

const toBigInt = (n: number | null | undefined) => (n != null ? BigInt(Math.round(n)) : null);

type DeviceRow = Awaited<ReturnType<Db["device"]["findFirstOrThrow"]>>;

export async function checkDevice(db: Db, device: DeviceRow, pool: SshPool): Promise<"online" | "degraded" | "offline" | "unknown"> {
  const started = Date.now();
  const now = new Date();
  let state: "online" | "degraded" | "offline" | "unknown";
  let error: string | null = null;
  let facts: DeviceFacts | null = null;
  let sha: string | null = null;
  if (!device.pinnedHostKey) {
    state = "unknown";
    error = "Not checked: run Test connection once to pin the host key";
  } else {
    try {
      // A kept-open session outlives a stopped sshd (its per-connection process stays): the
      // listener is asked for its banner first, so a device that stopped answering is offline
      // within one round.
      await expectSshBanner(device.host, device.port, device.name);
      const session = await pool.get(device.id, sshTargetOf(device));
      const probe = await probeDevice(session, device.modelDir, { timeoutMs: 20_000, healthCommand: device.healthCommand });
      facts = probe.facts;
      sha = probe.currentSha256;
      const isDiskOk = facts.diskFreeBytes === null || facts.diskFreeBytes === undefined || facts.diskFreeBytes >= LOW_DISK_BYTES;
      const isHealthy = probe.health ? probe.health.code === 0 : !facts.isServicePresent || facts.serviceState === "active";
      state = isHealthy && isDiskOk ? "online" : "degraded";
      if (!isHealthy && probe.health) error = `The health command (${device.healthCommand}) ${probe.health.code === 124 ? "did not finish within 15 s" : `exited ${probe.health.code}`}${probe.health.output.trim() ? `: ${probe.health.output.trim()}` : ""}`;
      else if (!isHealthy) error = `The policy service is ${facts.serviceState || "not running"}`;
      else if (!isDiskOk) error = `Only ${Math.round((facts.diskFreeBytes ?? 0) / 1024 / 1024)} MB free in ${device.modelDir}`;
    } catch (e) {
      pool.drop(device.id);
      if (!(e instanceof AppError)) throw e;
      state = e instanceof HostKeyChangedError ? "degraded" : "offline";
      error = e.message;
    }
  }
  const latencyMs = state === "offline" || state === "unknown" ? null : Date.now() - started;
  const version = facts ? await versionOfSha(db, device.orgId, sha) : null;
  await db.deviceHealthSample.create({
    data: { orgId: device.orgId, deviceId: device.id, at: now, state, load1: facts?.load1 ?? null, diskFreeBytes: toBigInt(facts?.diskFreeBytes), memoryAvailableBytes: toBigInt(facts?.memoryAvailableBytes), serviceState: facts?.serviceState ?? null, sha256: sha, versionId: version?.id ?? null, latencyMs, error },
  });
  // Only onto the device as it was when the check began: a rollout that wrote its new version and
  // state meanwhile knows better than a probe from before it, and a check against another host
  // key (Test connection pinned one meanwhile) or another address says nothing about it now. The
  // sample above stays: it is what the device said then.
  const { count } = await db.device.updateMany({
    where: { id: device.id, updatedAt: device.updatedAt },
    data: {
      state,
      lastCheckAt: now,
      lastError: error,
      ...(facts ? { lastSeenAt: now, facts: { ...(device.facts as object), ...facts, currentVersion: version } as object, currentSha256: sha, currentVersionId: version?.id ?? null } : {}),
    },
  });
  if (count > 0 && state === "offline" && device.state !== "offline") {
    await raiseAlert(db, { orgId: device.orgId, kind: "device.offline", severity: "critical", title: `${device.name} is offline`, message: error ?? "No SSH connection", target: `device:${device.id}` });
  }
  return state;
}
