import crypto from "node:crypto";
import { Readable } from "node:stream";
import type { OrgActor } from "../../server/auth/roles";
import type { Db } from "../../server/db";
import type { Signature } from "../../server/models/validation.schemas";
import { createEndpointInput } from "../../server/serving/endpoints.schemas";
import { createEndpoint } from "../../server/serving/endpoints.service";
import type { BlobStore } from "../../server/storage/blob-store";

// Model-server tests start from a version that already passed validation: its file in the
// blob store and its signature recorded, without running the validation job each time.

/** The MLP of onnx-models.ts: x[batch, 4] → y[batch, 3]. */
export const mlpSignature: Signature = { inputs: [{ name: "x", type: "float32", shape: ["batch", 4] }], outputs: [{ name: "y", type: "float32", shape: ["batch", 3] }] };

/** Stores `bytes` and records them as the next ready version of a model (a new one unless `modelId`). */
export async function addReadyVersion(
  db: Db,
  blobs: BlobStore,
  { actor, bytes, signature, modelId, filename = "m.onnx" }: { actor: OrgActor; bytes: Buffer; signature: Signature; modelId?: string; filename?: string },
): Promise<{ modelId: string; versionId: string }> {
  const blob = await blobs.put(Readable.from([bytes]));
  const id = modelId ?? (await db.model.create({ data: { orgId: actor.orgId, name: `model-${crypto.randomUUID().slice(0, 8)}` } })).id;
  const count = await db.modelVersion.count({ where: { modelId: id } });
  const version = await db.modelVersion.create({
    data: { orgId: actor.orgId, modelId: id, number: count + 1, status: "ready", source: { kind: "upload", filename }, sha256: blob.sha256, bytes: blob.bytes, signature },
  });
  return { modelId: id, versionId: version.id };
}

/** Creates an endpoint on a version and lets the model server pick it up at once. */
export async function deployOn(
  db: Db,
  server: { syncNow: () => Promise<void> },
  { actor, name, versionId, settings = {} }: { actor: OrgActor; name: string; versionId: string; settings?: Record<string, unknown> },
) {
  const endpoint = await createEndpoint(db, { actor, input: createEndpointInput.parse({ name, modelVersionId: versionId, settings }) });
  await server.syncNow();
  return endpoint;
}
