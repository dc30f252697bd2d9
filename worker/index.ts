import { databaseUrl } from "../server/db";
import { startWorker } from "./worker";

// The worker process: `tsx worker/index.ts`, started by `npm start` beside the portal.
const worker = await startWorker({ url: databaseUrl() });
console.log("Worker ready");

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
