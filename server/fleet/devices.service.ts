import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { env } from "../env";
import { invalidVersionWarning } from "../models/version-warning";
import { Prisma } from "../generated/prisma/client";
import { sealCredential } from "../ssh/sealed-target";
import { connectSsh, HostKeyChangedError } from "../ssh/ssh-client";
import { probeDevice, sshTargetOf, versionOfSha } from "./device-probe";
import type {
  createDeviceInput,
  CredentialInput,
  DeviceFacts,
  deviceDetailSchema,
  DeviceSummary,
  repinInput,
  TestConnectionResult,
  updateDeviceInput,
} from "./fleet.schemas";

// Devices: where they are, how to reach them (the sealed credential never leaves this
// module's writes), and what Test connection finds there.

const RECENT_SAMPLES = 20;

const summarySelect = {
  id: true,
  name: true,
  host: true,
  port: true,
  username: true,
  authKind: true,
  pinnedHostKey: true,
  tags: true,
  group: true,
  modelDir: true,
  restartCommand: true,
  healthCommand: true,
  state: true,
  lastSeenAt: true,
  lastCheckAt: true,
  lastError: true,
  currentSha256: true,
  currentVersion: { select: { id: true, modelId: true, number: true, status: true, error: true, model: { select: { name: true } } } },
} satisfies Prisma.DeviceSelect;

type SummaryRow = Prisma.DeviceGetPayload<{ select: typeof summarySelect }>;

function toSummary(row: SummaryRow, recentStates: DeviceSummary["recentStates"]): DeviceSummary {
  const { currentVersion, ...rest } = row;
  return {
    ...rest,
    currentVersion: currentVersion ? { id: currentVersion.id, modelId: currentVersion.modelId, modelName: currentVersion.model.name, number: currentVersion.number } : null,
    versionWarning: currentVersion ? invalidVersionWarning(currentVersion) : null,
    recentStates,
  };
}

function uniqueName(error: unknown, name: string | undefined): never {
  if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new AppError("CONFLICT", `A device named ${name} already exists here; choose another name`);
  throw error;
}

export async function listDevices(tx: Tx, { orgId }: { orgId: string }): Promise<DeviceSummary[]> {
  const rows = await tx.device.findMany({ where: { orgId }, orderBy: { name: "asc" }, select: summarySelect });
  if (rows.length === 0) return [];
  const samples = await tx.$queryRaw<{ deviceId: string; state: DeviceSummary["state"] }[]>`
    SELECT "deviceId", "state"::text AS "state" FROM (
      SELECT "deviceId", "state", "at", row_number() OVER (PARTITION BY "deviceId" ORDER BY "at" DESC, "id" DESC) AS n
      FROM "DeviceHealthSample" WHERE "deviceId" = ANY(${rows.map((r) => r.id)}::uuid[])
    ) s WHERE n <= ${RECENT_SAMPLES} ORDER BY "at" ASC`;
  return rows.map((row) => toSummary(row, samples.filter((s) => s.deviceId === row.id).map((s) => s.state)));
}

export async function getDevice(tx: Tx, { orgId, deviceId }: { orgId: string; deviceId: string }): Promise<z.infer<typeof deviceDetailSchema>> {
  const row = await tx.device.findFirst({ where: { id: deviceId, orgId }, select: { ...summarySelect, facts: true } });
  if (!row) throw new AppError("NOT_FOUND", "That device does not exist in this organisation");
  const samples = await tx.deviceHealthSample.findMany({ where: { deviceId }, orderBy: { at: "desc" }, take: 100 });
  const targets = await tx.deploymentTarget.findMany({
    where: { deviceId },
    orderBy: { deployment: { createdAt: "desc" } },
    take: 50,
    include: { deployment: { select: { id: true, kind: true, createdAt: true, modelVersion: { select: { id: true, modelId: true, number: true, model: { select: { name: true } } } } } } },
  });
  const { facts, ...summary } = row;
  return {
    ...toSummary(summary, samples.slice(0, RECENT_SAMPLES).reverse().map((s) => s.state)),
    facts: facts as DeviceFacts,
    samples: samples.map((s) => ({ at: s.at, state: s.state, load1: s.load1, diskFreeBytes: s.diskFreeBytes === null ? null : Number(s.diskFreeBytes), serviceState: s.serviceState, sha256: s.sha256, latencyMs: s.latencyMs, error: s.error })),
    history: targets.map((t) => ({
      deploymentId: t.deploymentId,
      kind: t.deployment.kind,
      version: { id: t.deployment.modelVersion.id, modelId: t.deployment.modelVersion.modelId, modelName: t.deployment.modelVersion.model.name, number: t.deployment.modelVersion.number },
      state: t.state,
      step: t.step,
      error: t.error,
      rollback: t.rollback,
      startedAt: t.startedAt,
      finishedAt: t.finishedAt,
      createdAt: t.deployment.createdAt,
    })),
  };
}

export async function createDevice(db: Db, { actor, input }: { actor: OrgActor; input: z.infer<typeof createDeviceInput> }): Promise<{ id: string }> {
  const { credential, modelDir, ...rest } = input;
  return db.$transaction(async (tx) => {
    const device = await tx.device
      .create({ data: { ...rest, ...sealCredential(credential), modelDir: modelDir ?? env().MODEL_DIR, orgId: actor.orgId, createdById: actor.userId }, select: { id: true } })
      .catch((error) => uniqueName(error, input.name));
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "device.create", target: `device:${device.id}`, data: { name: input.name, host: input.host, port: input.port, username: input.username, authKind: credential.kind } });
    return device;
  });
}

export async function updateDevice(db: Db, { actor, input }: { actor: OrgActor; input: z.infer<typeof updateDeviceInput> }): Promise<{ id: string }> {
  const { deviceId, credential, ...changes } = input;
  return db.$transaction(async (tx) => {
    const existing = await tx.device.findFirst({ where: { id: deviceId, orgId: actor.orgId }, select: { id: true, name: true, host: true, port: true, authKind: true } });
    if (!existing) throw new AppError("NOT_FOUND", "That device does not exist in this organisation");
    // Another address is another machine: its host key is pinned again on the next test, and the
    // stored password or key is not offered to it unless the person moving it enters it again.
    const isMoved = (changes.host !== undefined && changes.host !== existing.host) || (changes.port !== undefined && changes.port !== existing.port);
    if (isMoved && !credential) {
      const secret = existing.authKind === "key" ? "SSH key" : "password";
      throw new AppError("BAD_REQUEST", `Enter ${existing.name}'s ${secret} again to move it to ${changes.host ?? existing.host}:${changes.port ?? existing.port}: the stored one is only ever sent to ${existing.host}:${existing.port}`);
    }
    await tx.device
      .update({ where: { id: deviceId }, data: { ...changes, ...(credential ? sealCredential(credential) : {}), ...(isMoved ? { pinnedHostKey: null, state: "unknown" as const } : {}) } })
      .catch((error) => uniqueName(error, changes.name));
    await recordAudit(tx, {
      orgId: actor.orgId,
      actor,
      action: "device.update",
      target: `device:${deviceId}`,
      data: { fields: Object.keys(changes).filter((k) => changes[k as keyof typeof changes] !== undefined), isCredentialChanged: Boolean(credential), isHostKeyUnpinned: isMoved },
    });
    return { id: deviceId };
  });
}

export async function deleteDevice(db: Db, { actor, deviceId }: { actor: OrgActor; deviceId: string }): Promise<{ id: string }> {
  return db.$transaction(async (tx) => {
    const device = await tx.device.findFirst({ where: { id: deviceId, orgId: actor.orgId }, select: { id: true, name: true } });
    if (!device) throw new AppError("NOT_FOUND", "That device does not exist in this organisation");
    const busy = await tx.deploymentTarget.count({ where: { deviceId, state: { in: ["queued", "running"] } } });
    if (busy) throw new AppError("CONFLICT", `${device.name} is being deployed to; wait for its deployment to finish before removing it`);
    await tx.device.delete({ where: { id: deviceId } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "device.delete", target: `device:${deviceId}`, data: { name: device.name } });
    return { id: deviceId };
  });
}

async function loadDevice(tx: Tx, orgId: string, deviceId: string) {
  const device = await tx.device.findFirst({ where: { id: deviceId, orgId } });
  if (!device) throw new AppError("NOT_FOUND", "That device does not exist in this organisation");
  return device;
}

/**
 * The SSH handshake, pinning the host key on first contact, then the probe (hashing the
 * current model on the device). Failures are results, not errors: the page shows them.
 */
export async function testConnection(db: Db, { actor, orgId, deviceId }: { actor: OrgActor | null; orgId: string; deviceId: string }): Promise<TestConnectionResult> {
  const device = await loadDevice(db, orgId, deviceId);
  const started = Date.now();
  let result: TestConnectionResult;
  try {
    const session = await connectSsh(sshTargetOf(device));
    try {
      const latencyMs = Date.now() - started;
      const probe = await probeDevice(session, device.modelDir, { isHashing: true });
      const version = await versionOfSha(db, device.orgId, probe.currentSha256);
      const facts: DeviceFacts = { ...probe.facts, currentVersion: version };
      const isNewlyPinned = device.pinnedHostKey === null;
      const now = new Date();
      await db.device.update({
        where: { id: device.id },
        data: {
          pinnedHostKey: session.fingerprint,
          facts: facts as object,
          state: facts.serviceState === "active" || !facts.isServicePresent ? "online" : "degraded",
          lastSeenAt: now,
          lastCheckAt: now,
          lastError: null,
          currentSha256: probe.currentSha256,
          currentVersionId: version?.id ?? null,
        },
      });
      result = { isOk: true, fingerprint: session.fingerprint, isNewlyPinned, offeredFingerprint: null, error: null, facts, latencyMs };
    } finally {
      session.close();
    }
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    const offered = error instanceof HostKeyChangedError ? error.offered : null;
    await db.device.update({ where: { id: device.id }, data: { lastError: error.message, lastCheckAt: new Date() } });
    result = { isOk: false, fingerprint: device.pinnedHostKey, isNewlyPinned: false, offeredFingerprint: offered, error: error.message, facts: null, latencyMs: null };
  }
  await recordAudit(db, {
    orgId: device.orgId,
    actor,
    action: "device.test",
    target: `device:${device.id}`,
    data: { isOk: result.isOk, fingerprint: result.fingerprint, isNewlyPinned: result.isNewlyPinned, ...(result.error ? { error: result.error } : {}) },
  });
  return result;
}

/** Accepts a new host key after an admin checked it on the device: it must be the one offered now. */
export async function repinHostKey(db: Db, { actor, input }: { actor: OrgActor; input: z.infer<typeof repinInput> }): Promise<{ fingerprint: string; previous: string | null }> {
  const device = await loadDevice(db, actor.orgId, input.deviceId);
  const session = await connectSsh(sshTargetOf(device, { pinned: null }));
  const offered = session.fingerprint;
  session.close();
  if (offered !== input.fingerprint) {
    throw new AppError("CONFLICT", `${device.name} offers ${offered}, not ${input.fingerprint}; nothing was changed. Check the fingerprint on the device again`);
  }
  await db.$transaction(async (tx) => {
    await tx.device.update({ where: { id: device.id }, data: { pinnedHostKey: offered, lastError: null } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "device.repin", target: `device:${device.id}`, data: { from: device.pinnedHostKey, to: offered } });
  });
  return { fingerprint: offered, previous: device.pinnedHostKey };
}
