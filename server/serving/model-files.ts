import type { BlobStore } from "../storage/blob-store";

/** A model file's bytes from the blob store (onnxruntime loads from memory, so any store works). */
export async function readBlob(blobs: BlobStore, sha256: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of await blobs.get(sha256)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
