import fs from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { parseRepoId } from "../datasets/datasets.schemas";
import { rebuildDataset, type BuilderEnv } from "../datasets/builder.service";
import { deleteDataset, type DeleteDatasetEnv } from "../datasets/delete.service";
import { localEpisodeDir } from "../datasets/episode-files";
import { episodeStoreDir } from "../datasets/episode-store";
import type { BlobStore } from "../storage/blob-store";
import { Prisma } from "../generated/prisma/client";
import { FLAGS, flagSchema, reportSchema, type Flag } from "./evaluation.schemas";

// "Exclude flagged episodes": a new dataset holding the scored dataset's episodes without those
// a finding flags — a new LeRobot v3.0 build, its episodes' stored files linked rather than
// copied — so nothing is deleted and the two can be scored side by side.

export const deriveDatasetInput = z.object({
  evaluationId: z.uuid(),
  repoId: z.string().trim().min(1).max(200),
  /** Which findings exclude an episode (all of them when left out). */
  flags: z.array(flagSchema).min(1).optional(),
});

/** Hard links the files of a stored episode into the new one's folder (a copy where links cannot go). */
async function linkEpisodeFiles(from: string, to: string): Promise<void> {
  await fs.mkdir(to, { recursive: true });
  for (const entry of await fs.readdir(from, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    await fs.link(path.join(from, entry.name), path.join(to, entry.name)).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== "EXDEV" && error.code !== "EPERM") throw error;
      await fs.copyFile(path.join(from, entry.name), path.join(to, entry.name));
    });
  }
}

export async function excludeFlaggedEpisodes(db: Db, { actor, input, settings, blobs }: { actor: OrgActor; input: z.output<typeof deriveDatasetInput>; settings: BuilderEnv & DeleteDatasetEnv; blobs: BlobStore }): Promise<{ datasetId: string; kept: number; excluded: number[] }> {
  const evaluation = await db.datasetEvaluation.findFirst({ where: { id: input.evaluationId, orgId: actor.orgId }, include: { dataset: true } });
  if (!evaluation) throw new AppError("NOT_FOUND", "That evaluation does not exist in this organisation");
  if (evaluation.status !== "succeeded" || !evaluation.report) throw new AppError("CONFLICT", "This evaluation has no findings to act on; score the dataset first");
  const source = evaluation.dataset;
  // A folder or hub dataset is not Gantry's: there are no episodes here to leave out.
  if (!source) throw new AppError("CONFLICT", `${evaluation.sourceRef} is not a dataset in Gantry; import it first, then score it and exclude the flagged episodes`);
  if (evaluation.buildId !== source.buildId) throw new AppError("CONFLICT", `${source.repoId} has changed since it was scored; score it again, then exclude the flagged episodes`);
  const repoId = parseRepoId(input.repoId);
  const flags = new Set<Flag>(input.flags ?? FLAGS);
  const report = reportSchema.parse(evaluation.report);
  const excluded = report.episodes.filter((e) => e.findings.some((f) => flags.has(f.flag))).map((e) => e.index);
  const episodes = await db.episode.findMany({ where: { datasetId: source.id, status: "ready", deletedAt: null, datasetIndex: { not: null } }, orderBy: { datasetIndex: "asc" } });
  const kept = episodes.filter((e) => !excluded.includes(e.datasetIndex!));
  if (!kept.length) throw new AppError("CONFLICT", "Every episode is flagged; there would be nothing left in the new dataset");

  let datasetId: string;
  try {
    datasetId = await db.$transaction(async (tx) => {
      const dataset = await tx.dataset.create({
        data: {
          orgId: actor.orgId, repoId, source: "derived", importedVersion: source.importedVersion, fps: source.fps, robotType: source.robotType,
          features: source.features ?? Prisma.JsonNull, missingVideos: source.missingVideos, featureMap: source.featureMap ?? Prisma.JsonNull,
          derivedFrom: { datasetId: source.id, evaluationId: evaluation.id },
          description: `${source.repoId} without the ${excluded.length} episode(s) flagged ${[...flags].length === FLAGS.length ? "by its evaluation" : `for ${[...flags].join(", ")}`}`,
          createdById: actor.userId,
        },
      });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "dataset.derive", target: dataset.id, data: { repoId, from: source.repoId, evaluationId: evaluation.id, excluded } });
      return dataset.id;
    });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new AppError("CONFLICT", `Your organisation already has a dataset named ${repoId}; choose another repo id`);
    throw error;
  }
  try {
    for (const [i, e] of kept.entries()) {
      // The same blobs: an episode's files are named by their content.
      const episode = await db.episode.create({ data: { orgId: actor.orgId, datasetId, number: i, status: "ready", mode: e.mode, task: e.task, fps: e.fps, length: e.length, cameras: e.cameras, missingVideos: e.missingVideos, storedFiles: e.storedFiles ?? Prisma.DbNull, datasetIndex: i, createdById: actor.userId } });
      await linkEpisodeFiles(await localEpisodeDir(blobs, settings, e), episodeStoreDir(settings, datasetId, episode.id));
    }
    await rebuildDataset(db, { datasetId, settings, blobs });
  } catch (error) {
    // Nothing half-made stays behind under the new name: its rows, its episodes' files and any
    // build go the way of any deleted dataset (the person who made it may remove it).
    await deleteDataset(db, { actor, datasetId, settings, minRole: actor.role }).catch((cleanup: unknown) => console.error(`Could not remove the half-made dataset ${repoId}`, cleanup));
    throw error;
  }
  return { datasetId, kept: kept.length, excluded };
}
