import type { Task } from "graphile-worker";
import { storeUnstoredBuilds } from "../../../server/datasets/build-files";
import { storeUnstoredEpisodes } from "../../../server/datasets/episode-files";
import { env } from "../../../server/env";
import { blobStore } from "../../../server/storage/blobs";
import type { TaskDeps } from "../../define-task";

// Scheduled every ten minutes (worker/crontab): puts the files of episodes encoded, and of
// builds made, before they were kept in the blob store into it, from the worker whose disk
// holds them; what is on another machine's disk is left for a worker there.

export function storeDatasetFilesTask({ db }: Pick<TaskDeps, "db">): Task {
  return async (_payload, helpers) => {
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
    const episodes = await storeUnstoredEpisodes(db, blobStore(), { settings: env() });
    const builds = await storeUnstoredBuilds(db, blobStore(), { settings: env() });
    if (episodes.stored || builds.stored) helpers.logger.info(`Stored the files of ${plural(episodes.stored, "episode")} and ${plural(builds.stored, "dataset build")} in the blob store`);
    if (episodes.elsewhere || builds.elsewhere) helpers.logger.info(`${plural(episodes.elsewhere, "episode")} and ${plural(builds.elsewhere, "build")} not stored yet have no folder on this machine`);
  };
}
