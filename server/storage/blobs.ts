import { db } from "../db";
import { env, type Env } from "../env";
import type { BlobStore } from "./blob-store";
import { createLocalBlobStore } from "./local-blob-store";
import { createS3BlobStore, type S3BlobStore } from "./s3-blob-store";
import type { S3BucketSettings } from "./s3-client";

let store: BlobStore | undefined;

/** The S3 store the settings describe, or null when blobs are kept in a folder. */
export function s3StoreFromSettings(e: Env): S3BlobStore | null {
  if (e.BLOB_STORE !== "s3") return null;
  return s3StoreOf(e);
}

/** The bucket the S3_* settings name, whichever store is in use (for copying between them); null without them. */
export function s3StoreOf(e: Env): S3BlobStore | null {
  const bucket = s3BucketSettings(e);
  return bucket && createS3BlobStore({ ...bucket, publicEndpoint: e.S3_PUBLIC_ENDPOINT }, { db: e.DATABASE_URL ? db : undefined });
}

/** The instance's bucket as the S3_* settings name it (endpoint, bucket, keys, prefix); null unless all are set. */
export function s3BucketSettings(e: Env): S3BucketSettings | null {
  if (!e.S3_ENDPOINT || !e.S3_BUCKET || !e.S3_ACCESS_KEY_ID || !e.S3_SECRET_ACCESS_KEY) return null;
  return { endpoint: e.S3_ENDPOINT, bucket: e.S3_BUCKET, region: e.S3_REGION, forcePathStyle: e.S3_FORCE_PATH_STYLE, accessKeyId: e.S3_ACCESS_KEY_ID, secretAccessKey: e.S3_SECRET_ACCESS_KEY, prefix: e.S3_PREFIX };
}

/** The process-wide blob store: a directory under BLOB_DIR, or the S3 bucket of BLOB_STORE=s3. */
export function blobStore(): BlobStore {
  store ??= s3StoreFromSettings(env()) ?? createLocalBlobStore({ root: env().BLOB_DIR });
  return store;
}
