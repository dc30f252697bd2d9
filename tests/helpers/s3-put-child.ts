import crypto from "node:crypto";
import { createDb } from "../../server/db";
import { createS3BlobStore } from "../../server/storage/s3-blob-store";
import { chunked, noiseBytes } from "./noise";

// A process that puts seeded noise into the S3 store, stating its digest (so the upload is
// recorded part by part), and stalls once STALL_AT bytes have been handed over, to be killed there.
// Settings come from the environment: S3_ENDPOINT, S3_BUCKET, S3_PREFIX, S3_ACCESS_KEY_ID,
// S3_SECRET_ACCESS_KEY, DATABASE_URL, BYTES, SEED, STALL_AT, LEASE_MS, STATE ("stated" or "unstated").

const e = process.env;
const data = noiseBytes(Number(e.BYTES), Number(e.SEED));
const store = createS3BlobStore(
  { endpoint: e.S3_ENDPOINT!, bucket: e.S3_BUCKET!, region: "us-east-1", forcePathStyle: true, accessKeyId: e.S3_ACCESS_KEY_ID!, secretAccessKey: e.S3_SECRET_ACCESS_KEY!, prefix: e.S3_PREFIX },
  { db: () => createDb(e.DATABASE_URL!, 2), leaseMs: Number(e.LEASE_MS ?? 60_000) },
);
const stallAt = Number(e.STALL_AT);
const expectedSha256 = e.STATE === "unstated" ? undefined : crypto.createHash("sha256").update(data).digest("hex");
console.log("started");
// Stalled, it waits to be killed: a timer keeps it alive (a bare pending promise would let it exit).
const alive = setInterval(() => {}, 60_000);
await store.put(
  chunked(data, async (offset) => {
    if (offset >= stallAt) await new Promise(() => {});
  }),
  { expectedSha256 },
);
clearInterval(alive);
