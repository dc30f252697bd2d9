import { env, SettingsError } from "../server/env";
import { createDb, databaseUrl } from "../server/db";
import { RealtimeHub } from "../server/jobs/realtime";
import { blobStore } from "../server/storage/blobs";
import { InferenceEngine } from "../server/serving/inference.service";
import { readBlob } from "../server/serving/model-files";
import { createModelServer } from "./server";

// The model server process: `tsx serve/index.ts`, started beside web and worker by `npm start`.

const log = (m: string) => console.log(`[serve] ${m}`);

async function main() {
  const settings = env();
  const db = createDb(undefined, 4);
  const blobs = blobStore();
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: settings.MODEL_INFERENCE_TIMEOUT * 1000 });
  // The portal signs its "try it" calls with a key derived from the same AUTH_SECRET.
  // Its own LISTEN connection, for the database's news of revoked tokens and removed members.
  const accessEvents = new RealtimeHub({ url: databaseUrl(), db, log, jobEvents: false });
  const model = createModelServer({ db, engine, log, internalSecret: settings.AUTH_SECRET, accessEvents, metricsToken: settings.SERVE_METRICS_TOKEN, instanceAdmins: settings.INSTANCE_ADMINS });
  const address = await model.listen(settings.SERVE_PORT, settings.SERVE_HOST);
  log(`Model server on http://${address.address}:${address.port} (Open Inference Protocol v2 under /v2, metrics at /metrics)`);
  const stop = async () => {
    await model.close();
    await accessEvents.stop();
    await db.$disconnect();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

main().catch((error) => {
  console.error(error instanceof SettingsError ? error.message : error);
  process.exit(1);
});
