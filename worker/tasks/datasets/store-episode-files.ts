import type { Task } from "graphile-worker";
import { storeUnstoredEpisodes } from "../../../server/datasets/episode-files";
import { env } from "../../../server/env";
import { blobStore } from "../../../server/storage/blobs";
import type { TaskDeps } from "../../define-task";

// Scheduled every ten minutes (worker/crontab): puts the files of episodes encoded before
// episodes were kept in the blob store into it, fifty at a time, from the worker whose disk
// holds them.

export function storeEpisodeFilesTask({ db }: Pick<TaskDeps, "db">): Task {
  return async (_payload, helpers) => {
    const { stored, elsewhere } = await storeUnstoredEpisodes(db, blobStore(), { settings: env() });
    if (stored) helpers.logger.info(`Stored the files of ${stored} episode${stored === 1 ? "" : "s"} in the blob store`);
    if (elsewhere) helpers.logger.info(`${elsewhere} episode${elsewhere === 1 ? "" : "s"} not stored yet have no folder on this machine`);
  };
}
