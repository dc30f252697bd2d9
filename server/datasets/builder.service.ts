import type { Db } from "../db";
import { AppError } from "../errors";

/**
 * Adds an encoded episode to its dataset: it takes the next episode_index. Runs under the
 * dataset's row lock, so two episodes finishing together are numbered one after the other.
 */
export async function commitEpisode(db: Db, episodeId: string): Promise<void> {
  await db.$transaction(async (tx) => {
    const episode = await tx.episode.findUnique({ where: { id: episodeId } });
    if (!episode) throw new AppError("NOT_FOUND", "The episode was deleted while it was encoded");
    await tx.$executeRaw`SELECT 1 FROM "Dataset" WHERE "id" = ${episode.datasetId}::uuid FOR UPDATE`;
    if (episode.status === "ready") return;
    const count = await tx.episode.count({ where: { datasetId: episode.datasetId, status: "ready", deletedAt: null } });
    await tx.episode.update({ where: { id: episodeId }, data: { status: "ready", error: null, datasetIndex: count } });
    await tx.dataset.update({ where: { id: episode.datasetId }, data: { fps: episode.fps } });
  });
}
