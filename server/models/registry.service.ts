import crypto from "node:crypto";
import { Readable } from "node:stream";
import type { z } from "zod";
import { isUniqueViolation, type Db, type Tx } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { fetchModelJob, validateModelJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import type { ModelVersion } from "../generated/prisma/client";
import { checkUrl, OutboundRefusedError } from "../security/outbound";
import { formatBytes, type BlobSource, type BlobStore } from "../storage/blob-store";
import type {
  addVersionFromHubInput,
  addVersionFromUrlInput,
  createModelInput,
  modelDetailSchema,
  modelSummarySchema,
  revalidateInput,
  updateModelInput,
  VersionSource,
  ModelVersionView,
} from "./models.schemas";
import { recogniseNotAModel, SNIFF_BYTES } from "./not-a-model";
import { readSignature, SignatureReader } from "./onnx-signature";
import { sealToken } from "./sources.service";
import { toPublicSource, toUrlSource } from "./source-url";
import { parseTestVector, prepareTestVector } from "./test-vector";
import { signatureSchema, type Signature } from "./validation.schemas";

// The model registry: models, and their numbered, immutable versions. Adding a version
// creates it and enqueues the job that brings it in (fetch) or checks it (validate) in one
// transaction, so a version never waits for a job that does not exist.

type Input<S extends z.ZodType> = z.output<S>;
type Actor = { actor: OrgActor };

/** Refused by the upload route with 413. */
export class UploadTooLargeError extends AppError {
  constructor(maxBytes: number) {
    super("PAYLOAD_TOO_LARGE", `The model file is larger than the ${formatBytes(maxBytes)} MODEL_MAX_UPLOAD_BYTES allows; nothing was stored. Ask an administrator to raise MODEL_MAX_UPLOAD_BYTES, or fetch it from a URL or hub`);
  }
}

/** A test vector refused when it was given: nothing was stored or changed (400). */
/** The upload is plainly not a model (an LFS pointer, a web page, JSON): nothing of it is kept. */
export class NotAModelError extends AppError {
  constructor(why: string) {
    super("BAD_REQUEST", `${why} Nothing was stored.`);
  }
}

export class TestVectorRefusedError extends AppError {
  constructor(what: string, problems: string[], outcome: string) {
    super("BAD_REQUEST", `The test vector ${what}: ${problems.join("; ")}. ${outcome}`);
  }
}

/**
 * Checks a test vector as it is given: its form on its own, then against the model's declared
 * inputs and outputs when they are known (`signature` null: the file is not a model whose
 * inputs can be read, and its validation will say so; the vector is then only read).
 */
function checkTestVector(raw: unknown, signature: Signature | null, { modelLabel, outcome }: { modelLabel: string; outcome: string }): void {
  const parsed = parseTestVector(raw);
  if (!parsed.vector) throw new TestVectorRefusedError("cannot be read", parsed.problems, outcome);
  if (!signature) return;
  const prepared = prepareTestVector(raw, signature);
  if (!prepared.vector) throw new TestVectorRefusedError(`does not fit ${modelLabel}`, prepared.problems, outcome);
}

/**
 * Whether a deployment or serving endpoint uses this version. Any endpoint row counts, a
 * stopped one too: it keeps the version (the foreign key restricts deletes) so it can be
 * deployed again, until the endpoint itself is deleted. (Fleet deployments add their check here.)
 */
export async function isVersionInUse(db: Tx, versionId: string): Promise<boolean> {
  const endpoint = await db.endpoint.findFirst({ where: { modelVersionId: versionId }, select: { id: true } });
  return endpoint !== null;
}

export function toVersionView(v: ModelVersion): ModelVersionView {
  return {
    id: v.id,
    modelId: v.modelId,
    number: v.number,
    status: v.status,
    source: toPublicSource(v.source as VersionSource),
    sha256: v.sha256,
    bytes: v.bytes === null ? null : Number(v.bytes),
    opset: v.opset,
    producer: v.producer,
    signature: v.signature ?? null,
    validation: v.validation ?? null,
    error: v.error,
    jobId: v.jobId,
    createdAt: v.createdAt,
  };
}

/**
 * A version still fetching or validating whose job ended without saying so (cancelled before
 * it started, or a worker lost) is shown as failed with the job's reason, not as waiting forever.
 */
async function withJobOutcome(db: Tx, versions: ModelVersion[]): Promise<ModelVersionView[]> {
  const pending = versions.filter((v) => (v.status === "fetching" || v.status === "validating") && v.jobId).map((v) => v.jobId!);
  const ended = pending.length
    ? await db.job.findMany({ where: { id: { in: pending }, status: { in: ["failed", "cancelled"] } }, select: { id: true, status: true, error: true } })
    : [];
  const byId = new Map(ended.map((j) => [j.id, j]));
  return versions.map((v) => {
    const job = v.jobId ? byId.get(v.jobId) : undefined;
    if (!job || (v.status !== "fetching" && v.status !== "validating")) return toVersionView(v);
    const error = job.status === "cancelled" ? `The ${v.status === "fetching" ? "download" : "validation"} was cancelled` : (job.error ?? "Its job failed");
    return { ...toVersionView(v), status: "failed", error };
  });
}

const nameTaken = (name: string) => new AppError("CONFLICT", `This organisation already has a model named “${name}”; pick another name or add a version to that one`);

export async function createModel(db: Db, { actor, input }: Actor & { input: Input<typeof createModelInput> }): Promise<{ id: string }> {
  try {
    return await db.$transaction(async (tx) => {
      const model = await tx.model.create({ data: { orgId: actor.orgId, name: input.name, description: input.description, createdById: actor.userId } });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "model.create", target: model.id, data: { name: input.name } });
      return { id: model.id };
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw nameTaken(input.name);
    throw error;
  }
}

export async function listModels(db: Tx, { orgId }: { orgId: string }): Promise<z.infer<typeof modelSummarySchema>[]> {
  const models = await db.model.findMany({
    where: { orgId },
    orderBy: { name: "asc" },
    include: { versions: { orderBy: { number: "desc" }, take: 1 }, _count: { select: { versions: true } } },
  });
  const latest = await withJobOutcome(db, models.flatMap((m) => m.versions));
  const latestByModel = new Map(latest.map((v) => [v.modelId, v]));
  return models.map(({ _count, ...m }) => ({
    id: m.id,
    name: m.name,
    description: m.description,
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
    versionCount: _count.versions,
    latestVersion: latestByModel.get(m.id) ?? null,
  }));
}

async function findModel(db: Tx, orgId: string, modelId: string) {
  const model = await db.model.findFirst({ where: { id: modelId, orgId } });
  if (!model) throw new AppError("NOT_FOUND", "There is no such model in this organisation; it may have been deleted");
  return model;
}

export async function findVersion(db: Tx, orgId: string, versionId: string) {
  const version = await db.modelVersion.findFirst({ where: { id: versionId, orgId }, include: { model: true } });
  if (!version) throw new AppError("NOT_FOUND", "There is no such model version in this organisation; it may have been deleted");
  return version;
}

export async function getModel(db: Tx, { orgId, modelId }: { orgId: string; modelId: string }): Promise<z.infer<typeof modelDetailSchema>> {
  const model = await findModel(db, orgId, modelId);
  const versions = await db.modelVersion.findMany({ where: { modelId }, orderBy: { number: "desc" } });
  return {
    id: model.id,
    name: model.name,
    description: model.description,
    createdAt: model.createdAt,
    updatedAt: model.updatedAt,
    versionCount: versions.length,
    versions: await withJobOutcome(db, versions),
  };
}

export async function updateModel(db: Db, { actor, input }: Actor & { input: Input<typeof updateModelInput> }): Promise<{ id: string }> {
  try {
    return await db.$transaction(async (tx) => {
      const model = await findModel(tx, actor.orgId, input.modelId);
      await tx.model.update({ where: { id: model.id }, data: { name: input.name, description: input.description } });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "model.update", target: model.id, data: { from: model.name, name: input.name, description: input.description !== undefined } });
      return { id: model.id };
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw nameTaken(input.name ?? "");
    throw error;
  }
}

/** Deletes a model and its versions' records; the files stay in the blob store, which other versions may share. */
export async function deleteModel(db: Db, { actor, modelId }: Actor & { modelId: string }): Promise<{ id: string }> {
  return db.$transaction(async (tx) => {
    const model = await findModel(tx, actor.orgId, modelId);
    for (const v of await tx.modelVersion.findMany({ where: { modelId }, select: { id: true, number: true } })) {
      if (await isVersionInUse(tx, v.id)) throw new AppError("CONFLICT", `Version ${v.number} of ${model.name} is deployed or served; take it out of use before deleting the model`);
    }
    await tx.model.delete({ where: { id: model.id } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "model.delete", target: model.id, data: { name: model.name } });
    return { id: model.id };
  });
}

interface NewVersion {
  source: VersionSource;
  status: "fetching" | "validating";
  blob?: { sha256: string; bytes: number };
  /** Enqueues the version's job once the version exists. */
  job: (tx: Tx, versionId: string) => Promise<{ jobId: string }>;
  /** More to write in the same transaction (an upload in pieces removes its record: a piece sent again then finds it finished). */
  alsoInTransaction?: (tx: Tx) => Promise<unknown>;
}

/** Numbers the version under a lock on the model row, so two adds never take the same number. */
async function createVersion(db: Db, actor: OrgActor, modelId: string, v: NewVersion): Promise<{ versionId: string; number: number; jobId: string }> {
  return db.$transaction(async (tx) => {
    const locked = await tx.$queryRaw<{ id: string; name: string }[]>`SELECT "id", "name" FROM "Model" WHERE "id" = ${modelId}::uuid AND "orgId" = ${actor.orgId}::uuid FOR UPDATE`;
    if (!locked[0]) throw new AppError("NOT_FOUND", "There is no such model in this organisation; it may have been deleted");
    const last = await tx.modelVersion.aggregate({ where: { modelId }, _max: { number: true } });
    const number = (last._max.number ?? 0) + 1;
    const version = await tx.modelVersion.create({
      data: {
        id: crypto.randomUUID(),
        orgId: actor.orgId,
        modelId,
        number,
        status: v.status,
        source: v.source,
        sha256: v.blob?.sha256,
        bytes: v.blob ? BigInt(v.blob.bytes) : undefined,
        createdById: actor.userId,
      },
    });
    const { jobId } = await v.job(tx, version.id);
    await tx.modelVersion.update({ where: { id: version.id }, data: { jobId } });
    await tx.model.update({ where: { id: modelId }, data: { updatedAt: new Date() } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "model.version_add", target: version.id, data: { model: locked[0].name, number, source: toPublicSource(v.source) } });
    await v.alsoInTransaction?.(tx);
    return { versionId: version.id, number, jobId };
  });
}

const jobOpts = (tx: Tx, actor: OrgActor) => ({ tx, orgId: actor.orgId, createdById: actor.userId });

/**
 * Streams an uploaded file into the blob store (never into memory), checks the sender's
 * sha256 when given, and adds it as a version waiting for validation. A test vector given
 * with it is read before the file and checked against the model's inputs as the last bytes
 * arrive, before the file is stored: a vector that does not fit stores and adds nothing.
 */
export async function addVersionFromUpload(
  db: Db,
  {
    actor,
    modelId,
    body,
    blobs,
    maxBytes,
    sha256,
    filename,
    dims,
    testVector,
    signal,
    alsoInTransaction,
  }: Actor & { modelId: string; body: BlobSource; blobs: BlobStore; maxBytes: number; sha256?: string; filename?: string; dims: Record<string, number>; testVector?: unknown; signal?: AbortSignal; alsoInTransaction?: NewVersion["alsoInTransaction"] },
): Promise<{ versionId: string; number: number; jobId: string }> {
  await findModel(db, actor.orgId, modelId);
  const refused = "Nothing was stored; send the model again with a vector that fits, or without one";
  if (testVector !== undefined) checkTestVector(testVector, null, { modelLabel: "the model", outcome: refused });
  const signature = testVector === undefined ? null : new SignatureReader();
  let received = 0;
  let head: Uint8Array | null = new Uint8Array(0);
  async function* limited() {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      received += chunk.length;
      if (received > maxBytes) throw new UploadTooLargeError(maxBytes);
      // A file that is plainly not a model (an LFS pointer, a web page) is refused before it is
      // stored: told once its first SNIFF_BYTES have arrived (or it ends shorter).
      if (head !== null) {
        head = Buffer.concat([head, chunk.subarray(0, SNIFF_BYTES - head.length)]);
        if (head.length >= SNIFF_BYTES) {
          const why = recogniseNotAModel(head);
          head = null;
          if (why) throw new NotAModelError(why);
        }
      }
      signature?.push(chunk);
      yield chunk;
    }
    if (head !== null && head.length > 0) {
      const why = recogniseNotAModel(head);
      if (why) throw new NotAModelError(why);
    }
    // Thrown before the store has the whole file, so a vector that does not fit stores nothing.
    const read = signature?.finish();
    if (read && "signature" in read) checkTestVector(testVector, read.signature, { modelLabel: "the uploaded model", outcome: refused });
  }
  const blob = await blobs.put(limited(), { expectedSha256: sha256, signal });
  if (blob.bytes === 0) throw new AppError("BAD_REQUEST", "The upload was empty; send the ONNX file as the request body");
  // The vector goes to the blob store, not the job's payload: it may be megabytes.
  const testVectorSha256 = testVector === undefined ? undefined : (await putJson(blobs, testVector)).sha256;
  return createVersion(db, actor, modelId, {
    source: { kind: "upload", ...(filename ? { filename } : {}) },
    status: "validating",
    blob,
    job: (tx, versionId) => enqueue(validateModelJob, { versionId, dims, testVectorSha256 }, jobOpts(tx, actor)),
    alsoInTransaction,
  });
}

const putJson = (blobs: BlobStore, value: unknown) => blobs.put(Readable.from([Buffer.from(JSON.stringify(value))]));

export async function addVersionFromUrl(db: Db, { actor, input }: Actor & { input: Input<typeof addVersionFromUrlInput> }): Promise<{ versionId: string; number: number; jobId: string }> {
  // Refused at once when the address is one Gantry does not fetch from; the fetch checks again
  // (and reports a name that does not resolve, which may be passing).
  await checkUrl(input.url, "model-source").catch((error) => {
    if (error instanceof OutboundRefusedError) throw error;
  });
  return createVersion(db, actor, input.modelId, {
    source: toUrlSource(input.url),
    status: "fetching",
    job: (tx, versionId) => enqueue(fetchModelJob, { versionId, dims: input.dims }, jobOpts(tx, actor)),
  });
}

/** The token, if any, is sealed in the blob store for the fetch job and never reaches the database. */
export async function addVersionFromHub(
  db: Db,
  { actor, input, endpoint, blobs, secretKey }: Actor & { input: Input<typeof addVersionFromHubInput>; endpoint: string; blobs: BlobStore; secretKey: string },
): Promise<{ versionId: string; number: number; jobId: string }> {
  await findModel(db, actor.orgId, input.modelId);
  const credential = input.token ? await sealToken(blobs, input.token, secretKey) : undefined;
  try {
    return await createVersion(db, actor, input.modelId, {
      source: { kind: "hub", endpoint, repo: input.repo, revision: input.revision, filename: input.filename, isPrivate: Boolean(input.token) },
      status: "fetching",
      job: (tx, versionId) => enqueue(fetchModelJob, { versionId, dims: input.dims, credential }, jobOpts(tx, actor)),
    });
  } catch (error) {
    if (credential) await blobs.delete(credential);
    throw error;
  }
}

/**
 * Validates a version again (other dimensions, more runs, a test vector); its file does not
 * change. A test vector is checked against the version's inputs first: one that does not fit
 * is refused (400) with nothing changed, the version keeping its status and report.
 */
export async function revalidateVersion(db: Db, { actor, input, blobs }: Actor & { input: Input<typeof revalidateInput>; blobs: BlobStore }): Promise<{ versionId: string; jobId: string }> {
  const found = await findVersion(db, actor.orgId, input.versionId);
  const label = `version ${found.number} of ${found.model.name}`;
  let testVectorSha256: string | undefined;
  if (input.testVector !== undefined) {
    if (!found.sha256) throw noFileYet(found.number, found.model.name);
    const stored = signatureSchema.safeParse(found.signature);
    // Versions whose validation never read the file (it timed out, say) have no stored signature: read it from the file.
    const read = stored.success ? { signature: stored.data } : await readSignature(await blobs.get(found.sha256));
    checkTestVector(input.testVector, "signature" in read ? read.signature : null, { modelLabel: label, outcome: `Nothing was changed: ${label} keeps its status and report` });
    testVectorSha256 = (await putJson(blobs, input.testVector)).sha256;
  }
  return db.$transaction(async (tx) => {
    const version = await findVersion(tx, actor.orgId, input.versionId);
    if (!version.sha256) throw noFileYet(version.number, version.model.name);
    if (version.status === "validating" && version.jobId) {
      const job = await tx.job.findUnique({ where: { id: version.jobId }, select: { status: true } });
      if (job && (job.status === "queued" || job.status === "running")) throw new AppError("CONFLICT", `Version ${version.number} of ${version.model.name} is being validated already; wait for it to finish`);
    }
    const { jobId } = await enqueue(validateModelJob, { versionId: version.id, dims: input.dims, runs: input.runs, testVectorSha256 }, jobOpts(tx, actor));
    await tx.modelVersion.update({ where: { id: version.id }, data: { status: "validating", jobId, error: null } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "model.revalidate", target: version.id, data: { model: version.model.name, number: version.number, dims: input.dims, hasTestVector: testVectorSha256 !== undefined } });
    return { versionId: version.id, jobId };
  });
}

const noFileYet = (number: number, model: string) => new AppError("CONFLICT", `Version ${number} of ${model} has no file yet; wait for its download to finish, or add it again`);
