import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { expect } from "vitest";
import type { Db } from "../../server/db";
import { blobStore } from "../../server/storage/blobs";
import type { RigDevice } from "./sshd-rig";

// Shared by the fleet tests: model versions to roll out, and the invariant every scenario ends on.

/** A ready version `number` of the organisation's "policy" model: `bytes` random bytes in the blob store. */
export async function addPolicyVersion(db: Db, orgId: string, bytes: number, number: number): Promise<{ id: string; sha256: string; bytes: number }> {
  const stored = await blobStore().put(Readable.from([crypto.randomBytes(bytes)]));
  const model = await db.model.upsert({ where: { orgId_name: { orgId, name: "policy" } }, create: { orgId, name: "policy" }, update: {} });
  const v = await db.modelVersion.create({ data: { orgId, modelId: model.id, number, status: "ready", source: { kind: "upload" }, sha256: stored.sha256, bytes: BigInt(bytes) } });
  return { id: v.id, sha256: stored.sha256, bytes };
}

/** The invariant after every scenario: the link points at a complete file with the registry's digest, and no part is left. */
export function expectIntact(d: RigDevice, sha256: string): void {
  expect(d.currentTarget()).toBe(`models/${sha256}.onnx`);
  expect(crypto.createHash("sha256").update(fs.readFileSync(path.join(d.modelDir, "current_model.onnx"))).digest("hex")).toBe(sha256);
  expect(fs.readdirSync(path.join(d.modelDir, "models")).filter((f) => f.endsWith(".part"))).toEqual([]);
}
