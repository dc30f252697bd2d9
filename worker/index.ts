import { databaseUrl } from "../server/db";
import { isDatabaseUnavailable, OutageLog } from "../server/db/availability";
import { startWorker, type StartedWorker } from "./worker";

// The worker process: `tsx worker/index.ts`, started by `npm start` beside the portal.

/** Starts the worker, waiting (with backoff) for a database that is still starting or restarting. */
async function startWhenReachable(): Promise<StartedWorker> {
  const outage = new OutageLog("Worker", console.log);
  for (let attempt = 0; ; attempt++) {
    try {
      const worker = await startWorker({ url: databaseUrl() });
      outage.recovered();
      return worker;
    } catch (error) {
      if (!isDatabaseUnavailable(error, { socketErrors: true })) throw error;
      outage.failed(error);
      await new Promise((r) => setTimeout(r, Math.min(10_000, 250 * 2 ** attempt)));
    }
  }
}

const worker = await startWhenReachable();
console.log("Worker ready");
// A queue that gave up (its database away for many minutes) leaves this process with nothing
// to do: exit, and let `npm start` (or the service manager) start a fresh one.
void worker.stopped.then(() => process.exit(1));

let isStopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (isStopping) return;
    isStopping = true;
    console.log("Worker stopping: running jobs are interrupted and go back to the queue");
    worker.stop().then(
      () => process.exit(0),
      (error) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}
