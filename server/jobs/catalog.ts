import { z } from "zod";
import { jobEventSchema } from "./jobs.schemas";

// Every job is declared once here: its name (also the worker's task identifier), its payload
// schema, a title for people, and how often it may be tried.

export interface JobDef<S extends z.ZodType = z.ZodType> {
  name: string;
  title: string;
  payload: S;
  maxAttempts: number;
}

function defineJob<S extends z.ZodType>(def: JobDef<S>): JobDef<S> {
  return def;
}

export const selftestJob = defineJob({
  name: "system.selftest",
  title: "Self-test",
  payload: z.object({
    /** Without it the self-test checks what Gantry needs; with it, that many timed steps (for exercising jobs). */
    steps: z.number().int().min(1).max(50).optional(),
    stepMs: z.number().int().min(0).max(60_000).default(1000),
    /** Fail at this step (1-based) to exercise retries and failure reporting. */
    failAtStep: z.number().int().min(1).optional(),
  }),
  maxAttempts: 1,
});

/** Brings a model version's file into the blob store (URL or hub), then validates it. */
export const fetchModelJob = defineJob({
  name: "models.fetch",
  title: "Fetch model",
  payload: z.object({
    versionId: z.uuid(),
    /** Passed on to the validation that follows. */
    dims: z.record(z.string().max(100), z.number().int().min(1).max(65_536)).default({}),
    /** A hub token sealed in the blob store (never the token itself); deleted after the fetch. */
    credential: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  }),
  maxAttempts: 3,
});

/** Loads a model version with onnxruntime, reads its signature and times it. */
export const validateModelJob = defineJob({
  name: "models.validate",
  title: "Validate model",
  payload: z.object({
    versionId: z.uuid(),
    /** Values for symbolic dimensions by name; the rest are 1. */
    dims: z.record(z.string().max(100), z.number().int().min(1).max(65_536)).default({}),
    runs: z.number().int().min(1).max(10_000).optional(),
    /** A test vector already in the blob store: JSON { inputs, outputs } of name → nested arrays. */
    testVectorSha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  }),
  maxAttempts: 1,
});

/** Proves an endpoint's model loads and runs, then waits for the model server to serve it. */
export const deployEndpointJob = defineJob({
  name: "serving.deploy",
  title: "Deploy endpoint",
  payload: z.object({ endpointId: z.uuid() }),
  maxAttempts: 1,
});

/** Encodes one recorded episode's cameras to MP4 and adds the episode to its dataset. */
export const encodeEpisodeJob = defineJob({
  name: "datasets.encode-episode",
  title: "Encode episode",
  payload: z.object({ episodeId: z.uuid() }),
  maxAttempts: 3,
});

/** One device's part of a rollout: disk, upload, verify, swap, restart, health, rollback when needed. */
export const deployDeviceJob = defineJob({
  name: "fleet.deploy-device",
  title: "Deploy to device",
  payload: z.object({ targetId: z.uuid() }),
  // Further attempts are for a worker that died mid-deploy: the next run picks up from the
  // target's record. Every outcome the service reaches itself (succeeded, failed, rolled back)
  // is final and never retried: it ends with a non-INTERNAL error or none.
  maxAttempts: 3,
});

/** Copies a LeRobot v2.0, v2.1 or v3.0 dataset (a server folder or an unpacked upload) into Gantry. */
export const importDatasetJob = defineJob({
  name: "datasets.import",
  title: "Import dataset",
  payload: z.object({
    datasetId: z.uuid(),
    /** The dataset's root folder: checked to be inside an allowed root when the import was asked for. */
    sourceDir: z.string().min(1).max(4096),
    /** An uploaded archive kept in the blob store (its ArchiveUpload row): what the import reads, on whichever machine it runs. */
    archiveId: z.string().regex(/^[0-9a-f]{16}$/).optional(),
    /** An unpacked upload, removed once imported. */
    removeSource: z.boolean().default(false),
    /** Which features are the action, the state and the cameras, as the person confirmed them. */
    mapping: z.object({ action: z.string().max(200), state: z.string().max(200), cameras: z.array(z.string().max(200)).max(32).optional() }).optional(),
  }),
  maxAttempts: 2,
});

/**
 * Drives one training run from start to end: sync the dataset, launch on the host, follow the
 * log and checkpoints, bring the checkpoint home and register it. The run's folder on the host
 * says where it stands, so a worker that died is followed by one that re-attaches.
 */
export const trainingRunJob = defineJob({
  name: "training.run",
  title: "Training run",
  payload: z.object({ runId: z.uuid() }),
  // Outcomes the service reaches itself are final; further attempts are for lost connections
  // and dead workers, which re-attach to the run where it stands.
  maxAttempts: 5,
});

/** Brings home a checkpoint a run saved before its last (checkpoints/<step>) and registers it. */
export const trainingCheckpointJob = defineJob({
  name: "training.checkpoint",
  title: "Bring a checkpoint home",
  payload: z.object({ runId: z.uuid(), step: z.number().int().min(1) }),
  // Files already home are not fetched again, so a retry goes on where the last stopped.
  maxAttempts: 3,
});

/** Scores a dataset's current build on the DataBench metrics and stores the report. */
export const evaluateDatasetJob = defineJob({
  name: "datasets.evaluate",
  title: "Score dataset",
  payload: z.object({ evaluationId: z.uuid() }),
  // A scoring reads only; a retry starts it again from the build.
  maxAttempts: 2,
});

/** Writes a dataset's build to the instance's bucket as a plain LeRobot v3.0 tree. */
export const exportDatasetJob = defineJob({
  name: "datasets.export-bucket",
  title: "Write dataset to bucket",
  payload: z.object({
    datasetId: z.uuid(),
    /** The folder inside the organisation's part of the bucket; the repo id when absent. Checked when asked for. */
    folder: z.string().min(1).max(200).optional(),
  }),
  // A second attempt skips what the first wrote (same bytes, same ETag).
  maxAttempts: 2,
});

export const jobCatalog = [selftestJob, fetchModelJob, validateModelJob, deployEndpointJob, encodeEpisodeJob, deployDeviceJob, importDatasetJob, trainingRunJob, trainingCheckpointJob, evaluateDatasetJob, exportDatasetJob] as const;

export type JobName = (typeof jobCatalog)[number]["name"];

export function findJobDef(name: string): JobDef | undefined {
  return jobCatalog.find((d) => d.name === name);
}

/** What graphile-worker carries: only a reference, the rest lives in the Job row. */
export const taskPayloadSchema = z.object({ jobId: z.uuid() });

/**
 * pg_notify payloads. A job event's carries the event itself when it is small enough
 * (job-events.sql.ts), else only its ids; a cancel's, the job's id.
 */
export const EVENTS_CHANNEL = "gantry_job_events";
export const CANCEL_CHANNEL = "gantry_job_cancel";
export const eventNotificationSchema = z.object({
  jobId: z.uuid(),
  orgId: z.uuid(),
  id: z.string().regex(/^\d+$/),
  /** The event as jobEventSchema has it, less the ids above, its time in ms since the epoch. */
  event: jobEventSchema
    .omit({ id: true, jobId: true })
    .extend({ at: z.number().int() })
    .optional()
    // An event this process cannot take as sent (one from a process of another version, during
    // an upgrade) is read from the database by its ids instead.
    .catch(undefined),
});
export type EventNotification = z.output<typeof eventNotificationSchema>;
export const cancelNotificationSchema = z.object({ jobId: z.uuid() });
