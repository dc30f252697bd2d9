import { parseArgs } from "node:util";
import { db } from "../server/db";
import { env } from "../server/env";
import { copyBlobs, describeCopy, describeProgress } from "../server/storage/blob-copy.service";
import { createLocalBlobStore } from "../server/storage/local-blob-store";
import { s3StoreOf } from "../server/storage/blobs";

// `npm run blobs:copy -- --to s3|local [--verify]`: copies this instance's blobs from the folder
// (BLOB_DIR) to the bucket of the S3_* settings, or back, printing a line per blob. Run it again
// after an interruption: what the target holds is skipped. Set BLOB_STORE to the target once it
// has finished, then restart Gantry.

const { values } = parseArgs({ options: { to: { type: "string" }, verify: { type: "boolean", default: false } } });
if (values.to !== "s3" && values.to !== "local") {
  console.error("Say where to copy the blobs: npm run blobs:copy -- --to s3 (from BLOB_DIR to the bucket) or --to local (back)");
  process.exit(2);
}
const e = env();
const s3 = s3StoreOf(e);
if (!s3) {
  console.error("The bucket is not set: S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY are needed (see docs/storage.md)");
  process.exit(2);
}
try {
  await s3.check();
} catch (error) {
  console.error((error as Error).message);
  process.exit(1);
}
const local = createLocalBlobStore({ root: e.BLOB_DIR });
const [from, to, target] = values.to === "s3" ? [local, s3, `s3 bucket ${e.S3_BUCKET}${e.S3_PREFIX ? ` (${e.S3_PREFIX})` : ""}`] : [s3, local, `folder ${e.BLOB_DIR}`];
const stop = new AbortController();
process.once("SIGINT", () => stop.abort(new Error("Stopped; run the command again to go on")));
try {
  const report = await copyBlobs({ from, to, verify: values.verify, signal: stop.signal, onProgress: (p) => console.log(describeProgress(p)) });
  console.log(describeCopy(report, target));
} catch (error) {
  console.error(`The copy stopped: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  if (e.DATABASE_URL) await db().$disconnect().catch(() => {});
}
