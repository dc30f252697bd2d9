import { z } from "zod";

// Dataset scoring: the six metrics (codes as the earlier DataBench API: a, v, h, t, c, r), each
// a score in [0, 1] with the sub-scores behind it, and per-episode findings a person can act on.

export const METRIC_CODES = ["a", "v", "h", "t", "c", "r"] as const;
export type MetricCode = (typeof METRIC_CODES)[number];
export const metricCodeSchema = z.enum(METRIC_CODES);

export const METRIC_NAMES: Record<MetricCode, string> = {
  a: "Action consistency",
  v: "Visual diversity",
  h: "High-fidelity vision",
  t: "Trajectory quality",
  c: "Coverage",
  r: "Robot action quality",
};

/** One number behind a metric: its value (in its unit), its score in [0, 1], and what it means. */
export const subScoreSchema = z.object({
  key: z.string(),
  label: z.string(),
  /** null when the dataset holds nothing to measure it on (no video, one episode…). */
  score: z.number().min(0).max(1).nullable(),
  value: z.number().nullable(),
  unit: z.string().default(""),
  explain: z.string(),
});
export type SubScore = z.infer<typeof subScoreSchema>;

export const metricResultSchema = z.object({
  code: metricCodeSchema,
  name: z.string(),
  /** The mean of the sub-scores that could be measured; null when none could. */
  score: z.number().min(0).max(1).nullable(),
  /** One sentence: what the score says about this dataset. */
  summary: z.string(),
  subScores: z.array(subScoreSchema),
  notes: z.array(z.string()).default([]),
});
export type MetricResult = z.infer<typeof metricResultSchema>;

export const FLAGS = [
  "static-episode",
  "frozen-joint",
  "inactive-action",
  "too-short",
  "too-long",
  "jittery-timestamps",
  "dropped-frames",
  "limit-violation",
  "discontinuity",
  "state-action-lag",
  "not-finite",
  "duplicate",
  "missing-video",
  "blurred-camera",
  "dark-camera",
  "overexposed-camera",
  "frozen-camera",
  "black-camera",
] as const;
export type Flag = (typeof FLAGS)[number];
export const flagSchema = z.enum(FLAGS);

export const FLAG_WORDS: Record<Flag, string> = {
  "static-episode": "the arm barely moves",
  "frozen-joint": "a joint never moves while others do",
  "inactive-action": "an action dimension never changes",
  "too-short": "much shorter than the others",
  "too-long": "much longer than the others",
  "jittery-timestamps": "frame intervals vary well beyond 1/fps",
  "dropped-frames": "gaps of more than one frame interval",
  "limit-violation": "joint values beyond the arm's range",
  discontinuity: "a jump between consecutive frames no arm makes",
  "state-action-lag": "the state follows the action late",
  "not-finite": "NaN or infinite values",
  duplicate: "nearly the same as another episode",
  "missing-video": "a camera's video is missing",
  "blurred-camera": "a camera's frames are blurred",
  "dark-camera": "a camera's frames are too dark",
  "overexposed-camera": "a camera's frames are washed out",
  "frozen-camera": "a camera's picture does not change",
  "black-camera": "a camera shows black",
};

/** A flag on an episode, with the numbers behind it. */
export const findingSchema = z.object({
  flag: flagSchema,
  /** What exactly: "shoulder_lift moved 0.0° over 412 frames", "camera wrist". */
  detail: z.string(),
  values: z.record(z.string(), z.number()).default({}),
});
export type Finding = z.infer<typeof findingSchema>;

export const episodeReportSchema = z.object({
  index: z.number().int(),
  length: z.number().int(),
  task: z.string(),
  findings: z.array(findingSchema),
});
export type EpisodeReport = z.infer<typeof episodeReportSchema>;

/** The joint units the dataset was judged in, and why (the limits are checked in them). */
export const unitsSchema = z.object({
  kind: z.enum(["degrees", "radians", "range-100", "unknown"]),
  reason: z.string(),
});
export type Units = z.infer<typeof unitsSchema>;

/** Per-joint facts for the report's range plot: the values seen against the limits used. */
export const jointRangeSchema = z.object({ name: z.string(), min: z.number(), max: z.number(), limitMin: z.number().nullable(), limitMax: z.number().nullable() });

/** Largest JPEG kept for a sample frame, and most frames kept per report: the report is read whole, so its pictures stay small. */
export const SAMPLE_FRAME_MAX_BYTES = 24 * 1024;
export const SAMPLE_FRAMES_MAX = 24;

/** A frame shown in the report for its camera, with the numbers the h metric read off it. */
export const sampleFrameSchema = z.object({
  camera: z.string(),
  episode: z.number().int(),
  /** The frame's index in its episode. */
  frame: z.number().int(),
  width: z.number().int(),
  height: z.number().int(),
  /** Variance of the Laplacian of the grey frame (sharpness; low when blurred). */
  laplacianVar: z.number(),
  /** Mean brightness, 0..255. */
  luma: z.number(),
  /** The frame as a JPEG data URL (base64 of at most SAMPLE_FRAME_MAX_BYTES). */
  dataUrl: z.string().startsWith("data:image/jpeg;base64,").max(Math.ceil((SAMPLE_FRAME_MAX_BYTES * 4) / 3) + 32),
});
export type SampleFrame = z.infer<typeof sampleFrameSchema>;

/** The model whose image embeddings were the visual descriptors, when one was chosen. */
export const descriptorModelSchema = z.object({
  versionId: z.uuid(),
  modelId: z.uuid(),
  modelName: z.string(),
  number: z.number().int(),
  /** The frame size the model was fed, and the length of its embedding. */
  width: z.number().int(),
  height: z.number().int(),
  dims: z.number().int(),
});
export type DescriptorModel = z.infer<typeof descriptorModelSchema>;

export const reportSchema = z.object({
  metrics: z.array(metricResultSchema),
  overall: z.number().min(0).max(1).nullable(),
  units: unitsSchema,
  episodes: z.array(episodeReportSchema),
  jointRanges: z.array(jointRangeSchema).default([]),
  /** Histogram of frame intervals in ms: [bin start, count]. */
  intervalHistogram: z.array(z.tuple([z.number(), z.number()])).default([]),
  /** Per-episode 2-D map by visual descriptor (when visual metrics ran). */
  visualMap: z.array(z.object({ index: z.number(), x: z.number(), y: z.number() })).default([]),
  /** How visual descriptors were made ("8×8 grey thumbnails of N sampled frames"…). */
  descriptor: z.string().nullable().default(null),
  /** The organisation's image encoder used for the descriptors; null when they were made from the frames alone. */
  descriptorModel: descriptorModelSchema.nullable().default(null),
  /** A few frames per camera with their sharpness and brightness, and what those numbers mean. */
  sampleFrames: z.array(sampleFrameSchema).max(SAMPLE_FRAMES_MAX).default([]),
  sampleFramesExplain: z.string().nullable().default(null),
});
export type Report = z.infer<typeof reportSchema>;

/** A dataset to score, as the metrics read it: numeric arrays per episode, videos where they are. */
export interface EvalEpisode {
  index: number;
  task: string;
  timestamps: number[];
  state: number[][];
  action: number[][];
  /** camera → its video file and where the episode starts in it (seconds), or null when missing. */
  videos: Record<string, { file: string; from: number } | null>;
  /** Per-frame extras the dataset holds (e.g. next.success), by name. */
  extras: Record<string, number[]>;
}

export interface EvalDataset {
  fps: number;
  robotType: string | null;
  names: { action: string[]; state: string[] };
  cameras: string[];
  episodes: EvalEpisode[];
}

/** What a metric module returns: its result and the flags it raised, by episode index. */
export interface MetricOutput {
  result: MetricResult;
  findings: Map<number, Finding[]>;
}

/** What any scoring is asked for, whatever its dataset. */
const scoringChoices = {
  metrics: z.array(metricCodeSchema).min(1).default([...METRIC_CODES]),
  /** Frames sampled per episode and camera for the visual metrics. */
  framesPerEpisode: z.number().int().min(1).max(32).default(6),
  /** Score again even when an earlier scoring of the same data can be reused. */
  fresh: z.boolean().default(false),
};

export const startEvaluationInput = z.object({
  datasetId: z.uuid(),
  ...scoringChoices,
  /** An image-embedding ONNX model of the organisation (a ready version) whose embeddings are v's visual descriptors; none: descriptors from the frames alone. */
  imageEncoderVersionId: z.uuid().nullable().default(null),
});

/** A model version that can make the visual descriptors: one image input, one embedding out. */
export const imageEncoderSchema = descriptorModelSchema.extend({
  /** The embedding's length when the model declares it. */
  dims: z.number().int().nullable(),
});
export type ImageEncoder = z.infer<typeof imageEncoderSchema>;

/** A dataset Gantry does not hold: a LeRobot folder inside the import roots, or a hub dataset id. */
export const externalSourceSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("folder"), path: z.string().trim().min(1, "Give the folder's path on the server").max(4096) }),
  z.object({
    kind: z.literal("hub"),
    repo: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/, "A hub dataset is written owner/name, e.g. lerobot/svla_so101_pickplace")
      .refine((s) => !s.includes(".."), "A hub dataset name may not contain .."),
    revision: z
      .string()
      .trim()
      .max(200)
      .regex(/^[A-Za-z0-9._/-]*$/, "A revision is a branch, tag or commit: letters, digits, dots, dashes, underscores and slashes")
      .refine((s) => !s.split("/").includes("..") && !s.startsWith("/"), "A revision may not contain .. or start with /")
      .transform((s) => s || "main")
      .default("main"),
  }),
]);
export type ExternalSource = z.infer<typeof externalSourceSchema>;

export const startExternalEvaluationInput = z.object({
  source: externalSourceSchema,
  ...scoringChoices,
});

/** Where a scoring's dataset is: in Gantry, or outside it (and then which version of it was scored). */
export const evaluationSourceSchema = z.object({
  kind: z.enum(["dataset", "folder", "hub"]),
  /** The repo id, the folder as given, or owner/name on the hub. */
  label: z.string(),
  revision: z.string().nullable(),
  version: z.string().nullable(),
});

export const evaluationIdInput = z.object({ evaluationId: z.uuid() });
export const datasetIdInput = z.object({ datasetId: z.uuid() });

export const evaluationSummarySchema = z.object({
  id: z.uuid(),
  datasetId: z.uuid().nullable(),
  buildId: z.string().nullable(),
  status: z.string(),
  metrics: z.array(z.string()),
  overall: z.number().nullable(),
  scores: z.record(z.string(), z.number().nullable()).nullable(),
  error: z.string().nullable(),
  jobId: z.uuid().nullable(),
  createdAt: z.date(),
  finishedAt: z.date().nullable(),
  source: evaluationSourceSchema,
});

export const evaluationDetailSchema = evaluationSummarySchema.extend({
  /** null for a folder or hub dataset: Gantry holds no dataset to link to or derive from. */
  dataset: z.object({ id: z.uuid(), repoId: z.string(), buildId: z.string().nullable() }).nullable(),
  report: reportSchema.nullable(),
  /** Whether the dataset has not changed since (its build is the one scored). */
  isCurrentBuild: z.boolean(),
  /** For a dataset made by excluding flagged episodes: the evaluation it was made from, to compare with. */
  derivedFromEvaluationId: z.uuid().nullable(),
});
