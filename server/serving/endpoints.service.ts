import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import { checkRole, type OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { signatureSchema } from "../models/validation.schemas";
import { invalidVersionWarning } from "../models/version-warning";
import type { Prisma } from "../generated/prisma/client";
import { deployEndpointJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import {
  endpointSettingsSchema,
  servableEndpointSchema,
  type createEndpointInput,
  type EndpointDetail,
  type EndpointView,
  type ServableEndpoint,
  type updateEndpointVersionInput,
} from "./endpoints.schemas";

const withVersion = { modelVersion: { select: { number: true, status: true, error: true, model: { select: { name: true } } } } } as const;
type EndpointRow = Prisma.EndpointGetPayload<{ include: typeof withVersion }>;

function toView(e: EndpointRow): EndpointView {
  return {
    id: e.id,
    name: e.name,
    status: e.status,
    modelVersionId: e.modelVersionId,
    modelName: e.modelVersion.model.name,
    versionNumber: e.modelVersion.number,
    settings: endpointSettingsSchema.parse(e.settings),
    error: e.error,
    versionWarning: invalidVersionWarning(e.modelVersion),
    jobId: e.jobId,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
  };
}

async function findReadyVersion(tx: Tx, orgId: string, versionId: string) {
  const version = await tx.modelVersion.findFirst({ where: { id: versionId, orgId }, include: { model: { select: { name: true } } } });
  if (!version) throw new AppError("NOT_FOUND", "There is no such model version in this organisation; it may have been deleted");
  if (version.kind !== "onnx") throw new AppError("CONFLICT", `Version ${version.number} of ${version.model.name} is a LeRobot checkpoint, not an ONNX model; export it to ONNX and add that as a version to serve or deploy it`);
  if (version.status !== "ready") {
    throw new AppError("CONFLICT", `Version ${version.number} of ${version.model.name} is ${version.status}, not ready; only a version that passed validation can be served`);
  }
  return version;
}

/**
 * Serves a ready version under a name; a stopped or failed endpoint of the same name is taken over.
 * The deploy job (serving.deploy) is queued in the same transaction; its id comes back.
 */
export async function createEndpoint(db: Db, { actor, input }: { actor: OrgActor; input: z.output<typeof createEndpointInput> }): Promise<EndpointView & { jobId: string }> {
  checkRole(actor, "operator");
  return db.$transaction(async (tx) => {
    await findReadyVersion(tx, actor.orgId, input.modelVersionId);
    const existing = await tx.endpoint.findUnique({ where: { orgId_name: { orgId: actor.orgId, name: input.name } } });
    if (existing && (existing.status === "deploying" || existing.status === "ready")) {
      throw new AppError("CONFLICT", `An endpoint named ${input.name} is already ${existing.status}; undeploy it first or choose another name`);
    }
    const data = { modelVersionId: input.modelVersionId, settings: input.settings, status: "deploying" as const, error: null, createdById: actor.userId };
    const row = existing
      ? await tx.endpoint.update({ where: { id: existing.id }, data, include: withVersion })
      : await tx.endpoint.create({ data: { ...data, orgId: actor.orgId, name: input.name }, include: withVersion });
    const { jobId } = await enqueue(deployEndpointJob, { endpointId: row.id }, { tx, orgId: actor.orgId, createdById: actor.userId });
    await tx.endpoint.update({ where: { id: row.id }, data: { jobId } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: existing ? "endpoint.redeploy" : "endpoint.create", target: row.id, data: { name: input.name, modelVersionId: input.modelVersionId } });
    return { ...toView({ ...row, jobId }), jobId };
  });
}

/** Points an endpoint at another ready version; the model server swaps once the new one loads. */
export async function updateEndpointVersion(db: Db, { actor, input }: { actor: OrgActor; input: z.output<typeof updateEndpointVersionInput> }): Promise<EndpointView> {
  checkRole(actor, "operator");
  return db.$transaction(async (tx) => {
    const endpoint = await findEndpoint(tx, actor.orgId, input.endpointId);
    if (endpoint.status === "stopped") throw new AppError("CONFLICT", `Endpoint ${endpoint.name} is stopped; deploy it again instead`);
    await findReadyVersion(tx, actor.orgId, input.modelVersionId);
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "endpoint.change_version", target: endpoint.id, data: { name: endpoint.name, from: endpoint.modelVersionId, to: input.modelVersionId } });
    return toView(await tx.endpoint.update({ where: { id: endpoint.id }, data: { modelVersionId: input.modelVersionId, error: null }, include: withVersion }));
  });
}

export async function listEndpoints(db: Tx, actor: OrgActor): Promise<EndpointView[]> {
  checkRole(actor, "viewer");
  const rows = await db.endpoint.findMany({ where: { orgId: actor.orgId }, include: withVersion, orderBy: { name: "asc" } });
  return rows.map(toView);
}

export async function getEndpoint(db: Tx, { actor, endpointId }: { actor: OrgActor; endpointId: string }): Promise<EndpointView> {
  checkRole(actor, "viewer");
  return toView(await findEndpoint(db, actor.orgId, endpointId));
}

/** Stops serving: the model server drops the session on its next look at the table. */
export async function undeployEndpoint(db: Db, { actor, endpointId }: { actor: OrgActor; endpointId: string }): Promise<EndpointView> {
  checkRole(actor, "operator");
  return db.$transaction(async (tx) => {
    const endpoint = await findEndpoint(tx, actor.orgId, endpointId);
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "endpoint.undeploy", target: endpoint.id, data: { name: endpoint.name } });
    return toView(await tx.endpoint.update({ where: { id: endpoint.id }, data: { status: "stopped", error: null }, include: withVersion }));
  });
}

/** Removes a stopped or failed endpoint, which releases its model version for deletion. */
export async function deleteEndpoint(db: Db, { actor, endpointId }: { actor: OrgActor; endpointId: string }): Promise<{ id: string }> {
  checkRole(actor, "operator");
  return db.$transaction(async (tx) => {
    const endpoint = await findEndpoint(tx, actor.orgId, endpointId);
    if (endpoint.status === "deploying" || endpoint.status === "ready") {
      throw new AppError("CONFLICT", `Endpoint ${endpoint.name} is ${endpoint.status}; undeploy it before deleting it`);
    }
    await tx.endpoint.delete({ where: { id: endpoint.id } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "endpoint.delete", target: endpoint.id, data: { name: endpoint.name } });
    return { id: endpoint.id };
  });
}

/** One endpoint with its model's signature and the URLs it answers at (`serveUrl`: as callers reach the model server). */
export async function getEndpointDetail(db: Tx, { actor, endpointId, serveUrl }: { actor: OrgActor; endpointId: string; serveUrl: string }): Promise<EndpointDetail> {
  checkRole(actor, "viewer");
  const row = await findEndpoint(db, actor.orgId, endpointId);
  const version = await db.modelVersion.findUniqueOrThrow({ where: { id: row.modelVersionId }, select: { signature: true } });
  const signature = signatureSchema.safeParse(version.signature);
  const base = serveUrl.replace(/\/+$/, "");
  const name = encodeURIComponent(row.name);
  return {
    ...toView(row),
    signature: signature.success ? signature.data : { inputs: [], outputs: [] },
    urls: { base, infer: `${base}/v2/models/${name}/infer`, predict: `${base}/predict/${name}`, metadata: `${base}/v2/models/${name}` },
  };
}

async function findEndpoint(db: Tx, orgId: string, endpointId: string): Promise<EndpointRow> {
  const row = await db.endpoint.findFirst({ where: { id: endpointId, orgId }, include: withVersion });
  if (!row) throw new AppError("NOT_FOUND", "There is no such endpoint in this organisation; it may have been removed");
  return row;
}

/**
 * Every endpoint that should be served, across organisations: what the model server loads. A
 * failed one comes too, with its reason as `failure`, so the model server can answer that it
 * failed rather than that there is no such endpoint.
 */
export async function listServableEndpoints(db: Tx): Promise<ServableEndpoint[]> {
  const rows = await db.endpoint.findMany({
    where: { status: { in: ["deploying", "ready", "failed"] } },
    include: { modelVersion: { select: { id: true, number: true, sha256: true, bytes: true, signature: true, model: { select: { name: true } } } } },
  });
  return rows.flatMap((e) => {
    const parsed = servableEndpointSchema.safeParse({
      id: e.id,
      orgId: e.orgId,
      name: e.name,
      modelName: e.modelVersion.model.name,
      versionId: e.modelVersion.id,
      versionNumber: e.modelVersion.number,
      sha256: e.modelVersion.sha256,
      signature: e.modelVersion.signature,
      settings: e.settings,
      bytes: e.modelVersion.bytes === null ? null : Number(e.modelVersion.bytes),
      failure: e.status === "failed" ? (e.error ?? `Version ${e.modelVersion.number} of ${e.modelVersion.model.name} failed to deploy`) : null,
    });
    return parsed.success ? [parsed.data] : [];
  });
}

/** Records what the model server made of an endpoint: ready, or why it could not load. */
export async function recordEndpointState(db: Tx, { endpointId, status, error }: { endpointId: string; status: "ready" | "failed"; error: string | null }): Promise<void> {
  // Only live endpoints: an undeploy that raced the load must stay stopped.
  await db.endpoint.updateMany({ where: { id: endpointId, status: { in: ["deploying", "ready", "failed"] } }, data: { status, error } });
}
