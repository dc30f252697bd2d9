import { z } from "zod";
import { repoIdSchema } from "../datasets/datasets.schemas";

// The protocol between gantry-agent and the portal. The agent bundles this file, so it imports
// nothing but zod and the datasets domain's name rules.

/** A dataset's repo id: "name" or "owner/name" (the datasets domain's rule). */
export const edgeRepoIdSchema = repoIdSchema;

export const episodeIndexSchema = z.coerce.number().int().min(0).max(10_000_000);

/** 2 "edge": raw PNG frames, the portal encodes (the default). 0 "local": the agent encodes MP4s. */
export const offloadModes = { 2: "edge", 0: "local" } as const;
export const uploadModeSchema = z.enum(["edge", "local"]);
export type UploadMode = z.infer<typeof uploadModeSchema>;

// Cameras as the datasets domain names them (cameraNameSchema): a folder name without dots.
const CAMERA = "[A-Za-z0-9][A-Za-z0-9_-]{0,63}";
// The only files an episode may carry, relative to the repo's raw folder. Nothing else is
// accepted, so no name can climb out of it or land in another episode.
const ENTRY_PATTERNS = [
  new RegExp(`^images/(${CAMERA})/episode[-_](\\d{1,9})/frame[-_]\\d{1,9}\\.png$`),
  new RegExp(`^videos/(${CAMERA})/episode[-_](\\d{1,9})\\.mp4$`),
  /^data\/episode[-_](\d{1,9})\.(jsonl|parquet)$/,
];

/** The camera (if any) and episode number an entry belongs to, or null when the name is not allowed. */
export function parseEntryPath(name: string): { kind: "frame" | "video" | "data"; camera: string | null; episodeIndex: number } | null {
  const [frame, video, data] = ENTRY_PATTERNS.map((re) => re.exec(name));
  if (frame) return { kind: "frame", camera: frame[1], episodeIndex: Number(frame[2]) };
  if (video) return { kind: "video", camera: video[1], episodeIndex: Number(video[2]) };
  if (data) return { kind: "data", camera: null, episodeIndex: Number(data[1]) };
  return null;
}

export const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, "must be a sha256 in lowercase hex");

export const MANIFEST_NAME = "gantry-manifest.json";
export const CHECKSUMS_NAME = "gantry-sha256sums.txt";
export const ARCHIVE_FORMAT = "gantry-episode-tar/2";

/** The first entry of an episode archive: every file after it, with its size (their sha256 sums come last). */
export const episodeManifestSchema = z.object({
  format: z.literal(ARCHIVE_FORMAT),
  repoId: edgeRepoIdSchema,
  episodeIndex: episodeIndexSchema,
  mode: uploadModeSchema,
  files: z
    .array(z.object({ path: z.string().min(1).max(255), size: z.number().int().min(0) }))
    .min(1)
    .max(200_000),
});
export type EpisodeManifest = z.infer<typeof episodeManifestSchema>;

/** What the agent puts in the tus Upload-Metadata header; the portal adds who sent it. */
export const uploadMetadataSchema = z.object({
  format: z.literal(ARCHIVE_FORMAT, { error: `the archive format must be ${ARCHIVE_FORMAT}; update gantry-agent to the version this portal serves` }),
  repoId: edgeRepoIdSchema,
  episodeIndex: episodeIndexSchema,
  mode: uploadModeSchema,
  manifestSha256: sha256Schema,
  filename: z.string().max(300).optional(),
});

/** `POST /api/edge/episodes`: every file of the episode has arrived; queue its encoding. */
export const completeEpisodeInput = z.object({
  repoId: edgeRepoIdSchema,
  episodeIndex: episodeIndexSchema,
  task: z.string().max(1000).optional(),
  fps: z.number().int().min(1).max(1000).optional(),
  mode: uploadModeSchema.default("edge"),
});

/** `GET /api/edge/episodes?repoId&episodeIndex`: whether the portal already has an episode (so the agent can skip it). */
export const episodeStateQuery = z.object({ repoId: edgeRepoIdSchema, episodeIndex: episodeIndexSchema });
export const episodeStateSchema = z.object({ status: z.enum(["absent", "encoding", "ready", "failed", "deleted"]) });

export const completeEpisodeOutput = z.object({ episodeId: z.string(), jobId: z.string().nullable(), alreadyRegistered: z.boolean() });

/** `GET /api/edge/session`: who the agent's token acts as. */
export const agentSessionSchema = z.object({
  orgId: z.string(),
  orgName: z.string(),
  user: z.string(),
  role: z.string(),
  canUpload: z.boolean(),
  maxUploadBytes: z.number(),
});

/** The earlier edge clients' `POST /edge/upload-complete` body. */
export const compatUploadCompleteInput = z.object({ repo_id: edgeRepoIdSchema, episode_index: episodeIndexSchema, task: z.string().max(1000).optional(), fps: z.number().int().min(1).max(1000).optional() });

export const ingestStatuses = ["UPLOADING", "ENCODING", "TRAINING", "COMPLETED", "FAILED"] as const;

/** `GET /edge/status/{repo_id}` in the earlier shape, minus any credential. */
export const compatStatusSchema = z.object({
  repo_id: z.string(),
  status: z.enum(ingestStatuses),
  progress: z.number(),
  message: z.string(),
  episodes: z.object({ total: z.number(), encoded: z.number(), failed: z.number() }),
  /** The latest training run, when there is one (the earlier clients' transaction). */
  transaction_id: z.string().optional(),
  model_path: z.string().optional(),
  model_version_id: z.string().optional(),
});
export type CompatStatus = z.infer<typeof compatStatusSchema>;
