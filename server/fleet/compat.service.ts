import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { createDevice, listDevices, testConnection } from "./devices.service";
import { createDeviceInput } from "./fleet.schemas";
import { createRollout } from "./rollouts.service";

// The earlier deployment service's endpoints, mapped onto devices and rollouts. Its clients
// named a model by a file path on the server; here a path is only accepted when it names a
// registered file by its sha256 (models/<sha256>.onnx, as devices hold them), so no request
// can make the server read a path of its choosing. Passwords go in and never come out.

const sha256Pattern = /([0-9a-f]{64})(?:\.onnx)?$/;

export const compatDeployInput = z
  .object({
    model_path: z.string().max(1000).optional(),
    model_version_id: z.uuid().optional(),
    device_id: z.uuid(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  })
  .refine((v) => v.model_path || v.model_version_id, { message: "send model_version_id or model_path", path: ["model_version_id"] });

export const compatDeviceInput = z.object({
  name: z.string().min(1).max(64),
  host: z.string().min(1).max(253),
  port: z.number().int().min(1).max(65535).default(22),
  username: z.string().min(1).max(32),
  password: z.string().min(1).max(1000).optional(),
  private_key: z.string().min(1).max(16_000).optional(),
  tags: z.array(z.string()).max(20).default([]),
  group: z.string().max(64).nullable().optional(),
  model_dir: z.string().max(400).optional(),
});

export async function compatDeploy(db: Db, { actor, input }: { actor: OrgActor; input: z.infer<typeof compatDeployInput> }): Promise<{ message: string; task_id: string }> {
  let versionId = input.model_version_id;
  if (!versionId) {
    const sha = sha256Pattern.exec(input.model_path!)?.[1];
    if (!sha) throw new AppError("BAD_REQUEST", "model_path must name a registered model file by its sha256 (…/<sha256>.onnx); register the file under Models first, or send model_version_id");
    const version = await db.modelVersion.findFirst({ where: { orgId: actor.orgId, sha256: sha, status: "ready" }, select: { id: true } });
    if (!version) throw new AppError("NOT_FOUND", `No ready model version has the file ${sha.slice(0, 12)}…; register it under Models first`);
    versionId = version.id;
  }
  const { id } = await createRollout(db, { actor, input: { modelVersionId: versionId, selector: { deviceIds: [input.device_id] }, strategy: { kind: "all" } } });
  const target = await db.deploymentTarget.findFirstOrThrow({ where: { deploymentId: id }, select: { jobId: true, device: { select: { name: true } } } });
  return { message: `Deployment to ${target.device.name} started`, task_id: target.jobId! };
}

export async function compatListDevices(db: Db, { orgId }: { orgId: string }) {
  return (await listDevices(db, { orgId })).map((d) => ({
    id: d.id,
    name: d.name,
    host: d.host,
    port: d.port,
    username: d.username,
    status: d.state,
    tags: d.tags,
    group: d.group,
    model_dir: d.modelDir,
    current_model: d.currentVersion ? `${d.currentVersion.modelName} v${d.currentVersion.number}` : null,
    current_sha256: d.currentSha256,
    last_seen: d.lastSeenAt?.toISOString() ?? null,
    host_key_fingerprint: d.pinnedHostKey,
  }));
}

export async function compatAddDevice(db: Db, { actor, input }: { actor: OrgActor; input: z.infer<typeof compatDeviceInput> }) {
  if (!input.password === !input.private_key) throw new AppError("BAD_REQUEST", "Send either password or private_key");
  const parsed = createDeviceInput.safeParse({
    name: input.name,
    host: input.host,
    port: input.port,
    username: input.username,
    credential: input.password ? { kind: "password", password: input.password } : { kind: "key", privateKey: input.private_key },
    tags: input.tags,
    group: input.group ?? null,
    ...(input.model_dir ? { modelDir: input.model_dir } : {}),
  });
  if (!parsed.success) throw new AppError("BAD_REQUEST", `Invalid device: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
  const { id } = await createDevice(db, { actor, input: parsed.data });
  return { id, name: parsed.data.name, host: parsed.data.host, port: parsed.data.port, username: parsed.data.username, message: "Device added; its password or key is stored encrypted" };
}

export async function compatTestDevice(db: Db, { actor, deviceId }: { actor: OrgActor; deviceId: string }) {
  const r = await testConnection(db, { actor, orgId: actor.orgId, deviceId });
  return { success: r.isOk, message: r.isOk ? "Connected" : r.error, fingerprint: r.fingerprint, facts: r.facts };
}
