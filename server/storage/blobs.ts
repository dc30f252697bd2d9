import { env } from "../env";
import type { BlobStore } from "./blob-store";
import { createLocalBlobStore } from "./local-blob-store";

let store: BlobStore | undefined;

/** The process-wide blob store: a directory under BLOB_DIR. */
export function blobStore(): BlobStore {
  store ??= createLocalBlobStore({ root: env().BLOB_DIR });
  return store;
}
