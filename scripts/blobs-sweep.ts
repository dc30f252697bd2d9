import { parseArgs } from "node:util";
import { db } from "../server/db";
import { env } from "../server/env";
import { formatBytes } from "../server/storage/blob-store";
import { describeSweep, sweepBlobs } from "../server/storage/blob-sweep.service";
import { blobStore } from "../server/storage/blobs";

// `npm run blobs:sweep -- [--dry-run]`: what the worker's hourly sweep does, now — blobs no row
// names and leftovers of crashed writers, past BLOB_SWEEP_GRACE_S and BLOB_LEFTOVER_AGE_S.
// --dry-run lists what would go, with sizes, and removes nothing.

const { values } = parseArgs({ options: { "dry-run": { type: "boolean", default: false } } });
const e = env();
const dryRun = values["dry-run"] ?? false;
const report = await sweepBlobs(db(), {
  blobs: blobStore(),
  graceMs: e.BLOB_SWEEP_GRACE_S * 1000,
  leftoverAgeMs: e.BLOB_LEFTOVER_AGE_S * 1000,
  dryRun,
  onItem: (item) =>
    console.log(`${dryRun ? "would remove" : "removed"} ${item.kind === "blob" ? `blob ${item.sha256}` : `${item.what} ${item.name}`} (${formatBytes(item.bytes)}, last written ${item.modifiedAt.toISOString()})`),
});
console.log(describeSweep(report));
await db().$disconnect();
