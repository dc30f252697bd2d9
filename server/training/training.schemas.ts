import { z } from "zod";
import { credentialInput, hostSchema } from "../fleet/fleet.schemas";

// Training targets (GPU hosts the team owns) and runs: inputs, outputs, and the values a
// command template may name.

const nameSchema = z.string().trim().min(1, "is required").max(80).regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, "may hold letters, digits, spaces, dots, dashes and underscores");
const usernameSchema = z.string().trim().min(1, "is required").max(64).regex(/^[a-z_][a-z0-9_.-]*\$?$/i, "must be a Unix user name");
/** An absolute path on the host, or one under the user's home (~/…); no NUL or newline. */
export const hostPathSchema = z
  .string()
  .trim()
  .min(1, "is required")
  .max(1024)
  .regex(/^(\/|~\/)[^\0\n\r]*$/, "must be an absolute path (/…) or under the home folder (~/…)")
  .refine((p) => !p.split("/").includes(".."), "must not contain ..");
const shellLineSchema = z.string().max(2000).refine((s) => !/[\0\n\r]/.test(s), "must be one line");

export const PLACEHOLDERS = ["repo_id", "dataset", "policy", "output", "name", "steps", "save_freq", "log_freq"] as const;
export const DEFAULT_TEMPLATE =
  "lerobot-train --dataset.repo_id={repo_id} --dataset.root={dataset} --policy.type={policy} --output_dir={output} --job_name={name} --policy.device=cuda --policy.push_to_hub=false --steps={steps} --save_freq={save_freq} --log_freq={log_freq}";

export const commandTemplateSchema = z
  .string()
  .trim()
  .min(1, "is required")
  .max(4000)
  .refine((s) => !/[\0\n\r]/.test(s), "must be one line")
  .superRefine((s, ctx) => {
    for (const m of s.matchAll(/\{([^}]*)\}/g)) {
      if (!(PLACEHOLDERS as readonly string[]).includes(m[1])) ctx.addIssue({ code: "custom", message: `names {${m[1]}}, which is not a placeholder; use ${PLACEHOLDERS.map((p) => `{${p}}`).join(", ")}` });
    }
    if (!s.includes("{output}")) ctx.addIssue({ code: "custom", message: "must pass {output}: Gantry reads the checkpoints from there" });
  });

export const EXPORT_PLACEHOLDERS = ["checkpoint", "onnx", "output", "name", "policy", "repo_id", "steps"] as const;

/** A line run on the host after a run succeeds that writes an ONNX file ({onnx}) of the checkpoint ({checkpoint}). Empty: no export. */
export const exportCommandSchema = z
  .string()
  .trim()
  .max(4000)
  .refine((s) => !/[\0\n\r]/.test(s), "must be one line")
  .superRefine((s, ctx) => {
    if (!s) return;
    for (const m of s.matchAll(/\{([^}]*)\}/g)) {
      if (!(EXPORT_PLACEHOLDERS as readonly string[]).includes(m[1])) ctx.addIssue({ code: "custom", message: `names {${m[1]}}, which is not a placeholder; use ${EXPORT_PLACEHOLDERS.map((p) => `{${p}}`).join(", ")}` });
    }
    if (!s.includes("{checkpoint}") || !s.includes("{onnx}")) ctx.addIssue({ code: "custom", message: "must read {checkpoint} and write {onnx}: Gantry brings the file at {onnx} home" });
  });

export const createTargetInput = z.object({
  name: nameSchema,
  kind: z.enum(["ssh", "slurm", "transactions-api"]).default("ssh"),
  host: hostSchema,
  port: z.number().int().min(1).max(65535).default(22),
  username: usernameSchema,
  credential: credentialInput,
  workDir: hostPathSchema.default("~/gantry"),
  activate: shellLineSchema.default(""),
  commandTemplate: commandTemplateSchema.default(DEFAULT_TEMPLATE),
  exportCommand: exportCommandSchema.default(""),
  concurrency: z.number().int().min(1).max(16).default(1),
  isDefault: z.boolean().default(false),
  slurm: z
    .object({
      partition: z.string().trim().max(100).regex(/^[A-Za-z0-9_.-]*$/).default(""),
      account: z.string().trim().max(100).regex(/^[A-Za-z0-9_.-]*$/).default(""),
      /** Extra `#SBATCH` options, one per line, e.g. `--gres=gpu:1`. */
      options: z.array(z.string().trim().max(200).regex(/^--[A-Za-z0-9-]+(=[^\0\n\r]*)?$/, "must be one sbatch option like --gres=gpu:1")).max(20).default([]),
    })
    .nullable()
    .default(null),
  /** transactions-api: the API's base address (…/transactions/start is under it) and its bearer token. */
  api: z
    .object({
      url: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// address" }).max(2000),
      token: z.string().max(4096).refine((s) => !/[\0\n\r]/.test(s), "must be one line").default(""),
    })
    .nullable()
    .default(null),
}).refine((t) => t.kind !== "transactions-api" || t.api !== null, { path: ["api"], message: "is required for a transactions-api target: its address (and token, if it needs one)" });
export type CreateTargetInput = z.infer<typeof createTargetInput>;

export const targetIdInput = z.object({ targetId: z.uuid() });

export const targetFactsSchema = z.object({
  gpus: z.array(z.object({ name: z.string(), memoryMiB: z.number().nullable(), driver: z.string() })),
  diskFreeBytes: z.number().nullable(),
  python: z.string().nullable(),
  lerobot: z.string().nullable(),
  sbatch: z.string().nullable(),
  /** Plain sentences: what is missing or wrong. Empty when the target is ready. */
  problems: z.array(z.string()),
  fingerprint: z.string(),
});
export type TargetFacts = z.infer<typeof targetFactsSchema>;

export const targetSummarySchema = z.object({
  id: z.uuid(),
  name: z.string(),
  kind: z.string(),
  host: z.string(),
  port: z.number(),
  username: z.string(),
  authKind: z.string(),
  pinnedHostKey: z.string().nullable(),
  workDir: z.string(),
  activate: z.string(),
  commandTemplate: z.string(),
  exportCommand: z.string(),
  apiUrl: z.string().nullable(),
  concurrency: z.number(),
  isDefault: z.boolean(),
  facts: targetFactsSchema.nullable(),
  lastTestAt: z.date().nullable(),
  activeRuns: z.number(),
});
export type TargetSummary = z.infer<typeof targetSummarySchema>;

export const POLICY_PRESETS = ["act", "diffusion", "smolvla", "pi0", "pi05", "vqbet", "tdmpc"] as const;

export const createRunInput = z
  .object({
    datasetId: z.uuid(),
    targetId: z.uuid().optional(),
    name: nameSchema.optional(),
    policyType: z.string().trim().min(1, "is required").max(64).regex(/^[a-z0-9_.-]+$/, "must be a LeRobot policy type such as act or diffusion"),
    steps: z.number().int().min(1).max(10_000_000).default(100_000),
    saveFreq: z.number().int().min(1).max(10_000_000).default(20_000),
    logFreq: z.number().int().min(1).max(1_000_000).default(200),
    /** Further arguments, split like a shell would (quotes allowed), each quoted again on the host. */
    extraArgs: z.string().max(4000).refine((s) => !/[\0\n\r]/.test(s), "must be one line").default(""),
    /** An admin starts a run on a dataset that misses the quality gate, saying why (kept in the audit log). */
    gateOverride: z.object({ reason: z.string().trim().min(3, "say why the gate is overridden").max(500) }).optional(),
  })
  .refine((r) => r.saveFreq <= r.steps, { path: ["saveFreq"], message: "must not be more than steps, or no checkpoint is ever saved" });
export type CreateRunInput = z.infer<typeof createRunInput>;

export const runIdInput = z.object({ runId: z.uuid() });

export const RUN_STATUSES = ["queued", "syncing", "launching", "running", "unreachable", "fetching", "succeeded", "failed", "cancelled", "lost"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const FINAL_STATUSES: readonly RunStatus[] = ["succeeded", "failed", "cancelled", "lost"];

export const runSummarySchema = z.object({
  id: z.uuid(),
  name: z.string(),
  status: z.string(),
  policyType: z.string(),
  steps: z.number(),
  lastStep: z.number().nullable(),
  attempt: z.number(),
  dataset: z.object({ id: z.uuid(), repoId: z.string() }),
  target: z.object({ id: z.uuid(), name: z.string() }),
  error: z.string().nullable(),
  createdAt: z.date(),
  startedAt: z.date().nullable(),
  finishedAt: z.date().nullable(),
  jobId: z.uuid().nullable(),
  checkpointVersion: z.object({ id: z.uuid(), modelId: z.uuid(), modelName: z.string(), number: z.number() }).nullable(),
});
export type RunSummary = z.infer<typeof runSummarySchema>;

export const runDetailSchema = runSummarySchema.extend({
  saveFreq: z.number(),
  logFreq: z.number(),
  extraArgs: z.string(),
  runDir: z.string().nullable(),
  outputDir: z.string().nullable(),
  exitCode: z.number().nullable(),
  logTruncated: z.boolean(),
  lastMetrics: z.record(z.string(), z.union([z.number(), z.string()])).nullable(),
  unreachableSince: z.date().nullable(),
  command: z.string(),
  /** Slurm targets: the job, and its state and reason as Slurm last reported them. */
  slurm: z.object({ jobId: z.string(), state: z.string().nullable(), reason: z.string().nullable(), words: z.string() }).nullable(),
  /** transactions-api targets: the transaction and the status the API last gave. */
  transaction: z.object({ id: z.string(), status: z.string().nullable() }).nullable(),
  /** The checkpoints the host holds, by step, and those brought home (model versions). */
  checkpoints: z.array(z.object({ step: z.number(), onHost: z.boolean(), version: z.object({ id: z.uuid(), modelId: z.uuid(), number: z.number() }).nullable(), pullJobId: z.uuid().nullable() })),
  /** The ONNX the target's export command wrote, as a model version (validated like any), or why the export failed. */
  exportVersion: z.object({ id: z.uuid(), modelId: z.uuid(), number: z.number(), status: z.string() }).nullable(),
  exportError: z.string().nullable(),
});

export const pullCheckpointInput = z.object({ runId: z.uuid(), step: z.number().int().min(1).max(1e12) });

export const runLogInput = z.object({ runId: z.uuid(), attempt: z.number().int().min(1).optional(), after: z.number().int().min(-1).default(-1), limit: z.number().int().min(1).max(2000).default(500) });
/** `GET /api/training/runs/{id}/log`: one attempt's log (the latest when left out), after a byte offset. */
export const runLogStreamQuery = z.object({
  attempt: z.coerce.number().int().min(1).max(10_000).optional(),
  after: z.coerce.number().int().min(-1).optional(),
});
/** One piece of a run's log as its stream sends it (`event: log`); the offset is its first byte's. */
export const runLogPieceSchema = z.object({ attempt: z.number().int(), offset: z.number().int(), text: z.string() });
export const runLogSchema = z.object({
  attempt: z.number(),
  chunks: z.array(z.object({ offset: z.number(), text: z.string() })),
  truncated: z.boolean(),
});

export const runMetricsSchema = z.object({
  train: z.array(z.object({ step: z.number(), values: z.record(z.string(), z.number()) })),
  gpu: z.array(z.object({ at: z.date(), step: z.number(), values: z.record(z.string(), z.number()) })),
});
