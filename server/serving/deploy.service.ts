import type { Db } from "../db";
import { AppError } from "../errors";
import type { ProgressReporter } from "../jobs/progress";
import type { BlobStore } from "../storage/blob-store";
import { DEPLOY_STEPS } from "./deploy.steps";
import { servableEndpointSchema } from "./endpoints.schemas";
import { recordEndpointState } from "./endpoints.service";
import { readBlob } from "./model-files";
import { SessionPool, type RawTensor } from "./session-pool";

const [VALIDATE, FETCH, LOAD, WARM_UP, START, READY] = DEPLOY_STEPS;

// The deploy job's six steps. The worker proves the model loads and runs before the model
// server is asked to hold it, so a bad file fails here with a reason, not in the serve log.

export interface DeployEndpointOptions {
  orgId: string;
  endpointId: string;
  blobs: BlobStore;
  progress: ProgressReporter;
  signal?: AbortSignal;
  /** How long to wait for the model server to report the endpoint ready. */
  serveWaitMs?: number;
}

export async function deployEndpoint(db: Db, { orgId, endpointId, blobs, progress, signal, serveWaitMs = 60_000 }: DeployEndpointOptions): Promise<void> {
  await progress.step(VALIDATE.label, VALIDATE.at);
  const row = await db.endpoint.findFirst({ where: { id: endpointId, orgId }, include: { modelVersion: { include: { model: { select: { name: true } } } } } });
  if (!row) throw new AppError("NOT_FOUND", "The endpoint was removed before it could be deployed");
  if (row.status === "stopped") throw new AppError("CONFLICT", `Endpoint ${row.name} was undeployed before its deploy ran`);
  const version = row.modelVersion;
  if (version.status !== "ready" || !version.sha256) throw await fail(db, endpointId, `Version ${version.number} of ${version.model.name} is ${version.status}, not ready`);
  const spec = servableEndpointSchema.parse({ id: row.id, orgId, name: row.name, modelName: version.model.name, versionId: version.id, versionNumber: version.number, sha256: version.sha256, signature: version.signature, settings: row.settings });

  await progress.step(FETCH.label, FETCH.at);
  if (!(await blobs.has(spec.sha256))) throw await fail(db, endpointId, `The file of version ${spec.versionNumber} of ${spec.modelName} is missing from the blob store`);
  const bytes = await readBlob(blobs, spec.sha256);
  signal?.throwIfAborted();

  await progress.step(LOAD.label, LOAD.at);
  let pool: SessionPool;
  try {
    pool = await SessionPool.create(bytes, { size: 1, threads: spec.settings.threads });
  } catch (error) {
    throw await fail(db, endpointId, `Version ${spec.versionNumber} of ${spec.modelName} could not be loaded: ${(error as Error).message}`);
  }
  try {
    await progress.step(WARM_UP.label, WARM_UP.at);
    const feeds = Object.fromEntries(spec.signature.inputs.map((input) => [input.name, zeros(input.type, input.shape)]));
    await pool.run(feeds, spec.signature.outputs.map((o) => o.name)).catch(async (error: Error) => {
      throw await fail(db, endpointId, `Version ${spec.versionNumber} of ${spec.modelName} failed its warm-up run: ${error.message}`);
    });
  } finally {
    await pool.release();
  }
  signal?.throwIfAborted();

  await progress.step(START.label, START.at);
  const deadline = Date.now() + serveWaitMs;
  for (;;) {
    const current = await db.endpoint.findUnique({ where: { id: endpointId }, select: { status: true, error: true, modelVersionId: true } });
    if (!current || current.status === "stopped") throw new AppError("CONFLICT", `Endpoint ${spec.name} was undeployed while it was being deployed`);
    if (current.status === "ready") break;
    if (current.status === "failed") throw new AppError("INTERNAL", current.error ?? `The model server could not load endpoint ${spec.name}`);
    if (Date.now() > deadline) throw new AppError("INTERNAL", `The model server did not pick up endpoint ${spec.name} within ${Math.round(serveWaitMs / 1000)} s; check that the serve process is running`);
    signal?.throwIfAborted();
    await new Promise((r) => setTimeout(r, 250));
  }
  await progress.step(READY.label, READY.at);
}

async function fail(db: Db, endpointId: string, message: string): Promise<AppError> {
  await recordEndpointState(db, { endpointId, status: "failed", error: message });
  return new AppError("BAD_REQUEST", message);
}

function zeros(type: string, shape: Array<number | string>): RawTensor {
  const dims = shape.map((d) => (typeof d === "number" && d > 0 ? d : 1));
  const count = dims.reduce((a, b) => a * b, 1);
  const make: Record<string, () => RawTensor["data"]> = {
    float16: () => new Uint16Array(count), // zeros as half-precision bit patterns are zeros
    float32: () => new Float32Array(count),
    float64: () => new Float64Array(count),
    int64: () => new BigInt64Array(count),
    int32: () => new Int32Array(count),
    bool: () => new Uint8Array(count),
    uint8: () => new Uint8Array(count),
    int8: () => new Int8Array(count),
  };
  const data = make[type]?.();
  if (!data) throw new AppError("BAD_REQUEST", `Inputs of type ${type} cannot be warmed up yet`);
  return { type: type as RawTensor["type"], data, dims };
}
