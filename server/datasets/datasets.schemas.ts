import { z } from "zod";
import { AppError } from "../errors";
import { resolveInside } from "../security/paths";

// Names that become folders: repo ids, camera names, feature keys. Each is checked here so no
// user-given name can leave the folder it is joined to.

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/** "name" or "owner/name", as LeRobot and the hub spell dataset ids. */
export const repoIdSchema = z
  .string()
  .trim()
  .min(1, "is empty")
  .max(193)
  .refine((v) => {
    const parts = v.split("/");
    return parts.length <= 2 && parts.every((p) => SEGMENT.test(p) && !p.includes(".."));
  }, "must be name or owner/name: letters, digits, '.', '_' and '-', each part starting with a letter or digit, no '..'");

/** A camera as the recorder names its folder (images/<camera>/, videos/<camera>/). */
export const cameraNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "must be letters, digits, '_' and '-' (a folder name)");

export const episodeNumberSchema = z.number().int().min(0).max(10_000_000);

export const taskTextSchema = z.string().trim().max(2000);

export type RepoId = z.infer<typeof repoIdSchema>;

export function parseRepoId(value: string): string {
  const parsed = repoIdSchema.safeParse(value);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `Repo id ${JSON.stringify(value).slice(0, 120)} ${parsed.error.issues[0].message}`);
  return parsed.data;
}

// Repo ids belong to an organisation, and so do their folders: two organisations may each have
// `lab/pick-cube`, and one can never write into the other's.

/** EDGE_UPLOAD_DIR/<org id>: every raw folder of one organisation. */
export function orgRawRoot(env: { EDGE_UPLOAD_DIR: string }, orgId: string): string {
  return resolveInside(env.EDGE_UPLOAD_DIR, z.uuid().parse(orgId));
}

/** EDGE_UPLOAD_DIR/<org id>/<repo_id>: where an agent puts a dataset's raw episodes. */
export function rawEpisodeDir(env: { EDGE_UPLOAD_DIR: string }, orgId: string, repoId: string): string {
  return resolveInside(orgRawRoot(env, orgId), ...parseRepoId(repoId).split("/"));
}

/** DATASETS_DIR/<org id>/<repo_id>: the built dataset (a link to its current build). */
export function datasetDir(env: { DATASETS_DIR: string }, orgId: string, repoId: string): string {
  return resolveInside(env.DATASETS_DIR, z.uuid().parse(orgId), ...parseRepoId(repoId).split("/"));
}

/**
 * DATASETS_DIR/.store/<dataset id>: builds and each episode's own files. Repo ids cannot start
 * with '.', so this never meets a dataset folder.
 */
export function datasetStoreDir(env: { DATASETS_DIR: string }, datasetId: string): string {
  z.uuid().parse(datasetId);
  return resolveInside(env.DATASETS_DIR, ".store", datasetId);
}

// --- An imported dataset's own feature names (feature-map.ts)

export const featureKeySchema = z.string().min(1).max(200);

/** `POST /api/datasets/import?…`: the archive is the body; the query names the new dataset and, optionally, its features. */
export const archiveImportQuery = z
  .object({
    repoId: repoIdSchema,
    filename: z.string().max(300).optional(),
    /** The features to import as the action and the state (both, or neither to have them proposed). */
    action: featureKeySchema.optional(),
    state: featureKeySchema.optional(),
    /** Video features to import as cameras, comma-separated (all when left out; empty for none). */
    cameras: z.string().max(4000).optional(),
  })
  .refine((q) => (q.action === undefined) === (q.state === undefined), { message: "give both action and state, or neither", path: ["action"] });

/** What the person chose (or the API was sent): feature keys as the dataset names them. */
export const importMappingSchema = z.object({
  action: featureKeySchema,
  state: featureKeySchema,
  /** The video features to import as cameras; all of them when left out. */
  cameras: z.array(featureKeySchema).max(32).optional(),
});
export type ImportMapping = z.infer<typeof importMappingSchema>;

export const featureMapSchema = z.object({
  action: featureKeySchema,
  state: featureKeySchema,
  /** Every video feature imported, in the dataset's order, with the camera name Gantry shows. */
  cameras: z.array(z.object({ camera: cameraNameSchema, key: featureKeySchema })),
  /** Features the import left out, and why: the dataset page lists them. */
  dropped: z.array(z.object({ key: z.string(), reason: z.string() })).default([]),
});
export type FeatureMap = z.infer<typeof featureMapSchema>;

export const featureSummarySchema = z.object({ key: z.string(), dtype: z.string(), shape: z.array(z.number()), names: z.array(z.string()).nullable() });
export type FeatureSummary = z.infer<typeof featureSummarySchema>;

export const featureDetectionSchema = z.object({
  features: z.array(featureSummarySchema),
  /** Float vectors, best first, for the action and for the state; the person picks among these. */
  candidates: z.object({ action: z.array(z.string()), state: z.array(z.string()) }),
  /** The mapping proposed, with null for a role no feature is clearly for; every video feature is a camera. */
  proposed: z.object({ action: z.string().nullable(), state: z.string().nullable(), cameras: z.array(z.string()) }),
  /** True unless the dataset uses LeRobot's usual names throughout and nothing is ambiguous. */
  needsConfirmation: z.boolean(),
  /** What the proposed mapping would leave out, and why. */
  dropped: featureMapSchema.shape.dropped,
});
export type FeatureDetection = z.infer<typeof featureDetectionSchema>;

// --- API inputs and outputs

export const datasetIdInput = z.object({ datasetId: z.uuid() });
export const episodeIdInput = z.object({ episodeId: z.uuid() });
export const renameTaskInput = z.object({
  datasetId: z.uuid(),
  /** The task's current text, exactly. */
  from: z.string().max(2000),
  to: taskTextSchema.pipe(z.string().min(1, "is empty")),
});
export const importFolderInput = z.object({
  /** A folder on the server, inside one of DATASET_IMPORT_ROOTS, holding a LeRobot v2.1 or v3.0 dataset. */
  path: z.string().min(1).max(4096),
  repoId: repoIdSchema,
  /** Which features are the action, the state and the cameras; proposed from their names when left out. */
  mapping: importMappingSchema.optional(),
});
export const inspectFolderInput = importFolderInput.pick({ path: true });

export const importInspectionSchema = featureDetectionSchema.extend({
  version: z.enum(["v2.1", "v3.0"]),
  fps: z.number().nullable(),
  robotType: z.string().nullable(),
  episodes: z.number().nullable(),
});
export type ImportInspection = z.infer<typeof importInspectionSchema>;

/** An uploaded archive unpacked and waiting for the person to confirm its mapping. */
export const stagedImportSchema = z.object({ stagingId: z.string().regex(/^[0-9a-f]{16}$/), expiresAt: z.date(), inspection: importInspectionSchema });
export const importStagedInput = z.object({ stagingId: stagedImportSchema.shape.stagingId, repoId: repoIdSchema, mapping: importMappingSchema });
export const discardStagedInput = importStagedInput.pick({ stagingId: true });

const episodeStatus = z.enum(["encoding", "ready", "failed"]);

export const datasetSummarySchema = z.object({
  id: z.uuid(),
  repoId: z.string(),
  source: z.string(),
  importedVersion: z.string().nullable(),
  fps: z.number().nullable(),
  robotType: z.string().nullable(),
  cameras: z.array(z.string()),
  /** Video features of which no episode has a video. */
  missingVideos: z.array(z.string()),
  /** Numbers of episodes missing a video that other episodes have (kept out of the dataset's files). */
  episodesWithoutVideo: z.array(z.number()),
  /** An imported dataset's import: still running, failed (nothing was kept), or done; null for recorded ones. */
  importStatus: z.enum(["importing", "failed", "imported"]).nullable(),
  importError: z.string().nullable(),
  episodes: z.object({ ready: z.number(), encoding: z.number(), failed: z.number(), deleted: z.number() }),
  totalFrames: z.number(),
  builtAt: z.date().nullable(),
  createdAt: z.date(),
});
export type DatasetSummary = z.infer<typeof datasetSummarySchema>;

export const episodeSummarySchema = z.object({
  id: z.uuid(),
  number: z.number(),
  datasetIndex: z.number().nullable(),
  status: episodeStatus,
  mode: z.string(),
  task: z.string(),
  length: z.number().nullable(),
  durationS: z.number().nullable(),
  cameras: z.array(z.string()),
  /** Cameras of the dataset this episode has no video for. */
  missingVideos: z.array(z.string()),
  error: z.string().nullable(),
  jobId: z.uuid().nullable(),
  jobProgress: z.number().nullable(),
  deletedAt: z.date().nullable(),
  createdAt: z.date(),
});
export type EpisodeSummary = z.infer<typeof episodeSummarySchema>;

export const datasetDetailSchema = datasetSummarySchema.extend({
  description: z.string(),
  /** The latest import of an imported dataset, for its progress and errors. */
  importJob: z.object({ id: z.uuid(), status: z.string(), progress: z.number(), step: z.string().nullable(), error: z.string().nullable() }).nullable(),
  jointNames: z.object({ action: z.array(z.string()), state: z.array(z.string()) }),
  /** The dataset's own feature names (an import's), and what its import left out. */
  featureMap: featureMapSchema.nullable(),
  tasks: z.array(z.object({ text: z.string(), episodes: z.number() })),
  episodeList: z.array(episodeSummarySchema),
});
export type DatasetDetail = z.infer<typeof datasetDetailSchema>;

export const episodeDetailSchema = z.object({
  episode: episodeSummarySchema,
  dataset: z.object({ id: z.uuid(), repoId: z.string(), fps: z.number().nullable(), missingVideos: z.array(z.string()) }),
  jointNames: z.object({ action: z.array(z.string()), state: z.array(z.string()) }),
  /** Per frame, for the plots; null until the episode is encoded. */
  frames: z
    .object({
      timestamp: z.array(z.number()),
      state: z.array(z.array(z.number())),
      action: z.array(z.array(z.number())),
    })
    .nullable(),
  videos: z.array(z.object({ camera: z.string(), url: z.string().nullable(), width: z.number().nullable(), height: z.number().nullable() })),
});
export type EpisodeDetail = z.infer<typeof episodeDetailSchema>;

// --- Features as stored: Postgres jsonb does not keep key order, and LeRobot's features are
// ordered (cameras, columns), so the database holds them as a list of { key, ...feature }.

export interface StoredFeature {
  dtype?: string;
  shape?: number[];
  names?: unknown;
  info?: unknown;
}

export function featuresToJson(features: Record<string, unknown>): { key: string }[] {
  return Object.entries(features).map(([key, f]) => ({ key, ...(f as object) }));
}

export function featuresFromJson(json: unknown): Record<string, StoredFeature> {
  const out: Record<string, StoredFeature> = {};
  if (!Array.isArray(json)) return out;
  for (const item of json as ({ key?: unknown } & StoredFeature)[]) {
    if (typeof item?.key !== "string") continue;
    const { key, ...feature } = item;
    out[key as string] = feature;
  }
  return out;
}
