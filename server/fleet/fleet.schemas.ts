import { z } from "zod";

// Devices, their health and rollouts. Credentials go in (createDeviceInput, updateDeviceInput)
// and never come out: no output schema here has a field that could hold one.

export const DEFAULT_RESTART_COMMAND = "sudo systemctl restart gantry-policy";
export const DEFAULT_HEALTH_COMMAND = "systemctl is-active --quiet gantry-policy";
/** The unit Test connection and health checks look for. */
export const POLICY_SERVICE = "gantry-policy";

export const deviceStateSchema = z.enum(["online", "degraded", "offline", "unknown"]);
export const deploymentStatusSchema = z.enum(["scheduled", "running", "succeeded", "failed", "aborted", "cancelled"]);
export const targetStateSchema = z.enum(["pending", "queued", "running", "succeeded", "failed", "rolled_back", "skipped"]);

const nameSchema = z
  .string()
  .trim()
  .min(1, "is required")
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "may hold letters, digits, dots, dashes and underscores, starting with a letter or digit");
const labelSchema = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, "may hold letters, digits, dots, colons, dashes and underscores");
export const hostSchema = z
  .string()
  .trim()
  .min(1, "is required")
  .max(253)
  .regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\[?[0-9A-Fa-f:.]+\]?$/, "must be a host name or an IP address");
const usernameSchema = z
  .string()
  .trim()
  .min(1, "is required")
  .max(32)
  .regex(/^[a-z_][a-z0-9_.-]*\$?$/i, "must be a login name such as robot or ubuntu");
/** Absolute, with no "." or ".." parts: every path on the device is built under it. */
export const modelDirSchema = z
  .string()
  .trim()
  .max(400)
  .regex(/^\/[^\0\n]*$/, "must be an absolute path on the device, e.g. /opt/gantry")
  .refine((p) => !p.split("/").some((part) => part === "." || part === ".."), "may not contain . or .. parts")
  .transform((p) => (p.length > 1 ? p.replace(/\/+$/, "") : p));
const commandSchema = z.string().trim().min(1).max(1000).refine((c) => !c.includes("\0"), "may not contain a NUL byte");

export const credentialInput = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("key"), privateKey: z.string().min(1, "is required").max(16_000), passphrase: z.string().max(1000).optional() }),
  z.object({ kind: z.literal("password"), password: z.string().min(1, "is required").max(1000) }),
]);
export type CredentialInput = z.infer<typeof credentialInput>;

export const createDeviceInput = z.object({
  name: nameSchema,
  host: hostSchema,
  port: z.number().int().min(1).max(65535).default(22),
  username: usernameSchema,
  credential: credentialInput,
  tags: z.array(labelSchema).max(20).default([]),
  group: labelSchema.nullable().default(null),
  /** Default: MODEL_DIR. */
  modelDir: modelDirSchema.optional(),
  restartCommand: commandSchema.default(DEFAULT_RESTART_COMMAND),
  healthCommand: commandSchema.default(DEFAULT_HEALTH_COMMAND),
});

export const updateDeviceInput = z.object({
  deviceId: z.uuid(),
  name: nameSchema.optional(),
  host: hostSchema.optional(),
  port: z.number().int().min(1).max(65535).optional(),
  username: usernameSchema.optional(),
  /** Replaces the stored credential; omitted keeps it. */
  credential: credentialInput.optional(),
  tags: z.array(labelSchema).max(20).optional(),
  group: labelSchema.nullable().optional(),
  modelDir: modelDirSchema.optional(),
  restartCommand: commandSchema.optional(),
  healthCommand: commandSchema.optional(),
});

export const deviceIdInput = z.object({ deviceId: z.uuid() });
export const repinInput = z.object({
  deviceId: z.uuid(),
  /** The fingerprint the admin checked on the device; it must be the one the device offers now. */
  fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, "must be a SHA256:… fingerprint as ssh-keygen -l prints it"),
});

export const deviceFactsSchema = z.object({
  os: z.string().nullable().optional(),
  kernel: z.string().nullable().optional(),
  arch: z.string().nullable().optional(),
  jetsonRelease: z.string().nullable().optional(),
  board: z.string().nullable().optional(),
  cpu: z.string().nullable().optional(),
  cpus: z.number().nullable().optional(),
  memoryBytes: z.number().nullable().optional(),
  memoryAvailableBytes: z.number().nullable().optional(),
  load1: z.number().nullable().optional(),
  diskFreeBytes: z.number().nullable().optional(),
  isServicePresent: z.boolean().optional(),
  serviceState: z.string().nullable().optional(),
  currentTarget: z.string().nullable().optional(),
  currentSha256: z.string().nullable().optional(),
  currentVersion: z.object({ id: z.uuid(), modelName: z.string(), number: z.number() }).nullable().optional(),
  checkedAt: z.string().optional(),
});
export type DeviceFacts = z.infer<typeof deviceFactsSchema>;

const versionRefSchema = z.object({ id: z.uuid(), modelId: z.uuid(), modelName: z.string(), number: z.number().int() }).nullable();

export const deviceSummarySchema = z.object({
  id: z.uuid(),
  name: z.string(),
  host: z.string(),
  port: z.number().int(),
  username: z.string(),
  authKind: z.enum(["key", "password"]),
  pinnedHostKey: z.string().nullable(),
  tags: z.array(z.string()),
  group: z.string().nullable(),
  modelDir: z.string(),
  restartCommand: z.string(),
  healthCommand: z.string(),
  state: deviceStateSchema,
  lastSeenAt: z.date().nullable(),
  lastCheckAt: z.date().nullable(),
  lastError: z.string().nullable(),
  currentSha256: z.string().nullable(),
  currentVersion: versionRefSchema,
  /** Set when the version it runs was validated again and found invalid. */
  versionWarning: z.string().nullable(),
  /** Oldest first: the last samples' states, for a small history strip. */
  recentStates: z.array(deviceStateSchema),
});
export type DeviceSummary = z.infer<typeof deviceSummarySchema>;

export const healthSampleSchema = z.object({
  at: z.date(),
  state: deviceStateSchema,
  load1: z.number().nullable(),
  diskFreeBytes: z.number().nullable(),
  serviceState: z.string().nullable(),
  sha256: z.string().nullable(),
  latencyMs: z.number().nullable(),
  error: z.string().nullable(),
});

export type DeviceState = z.infer<typeof deviceStateSchema>;

/** The windows a device's health chart offers, in hours (one hour to the fourteen days kept). */
export const HEALTH_WINDOWS_HOURS = [1, 24, 24 * 7, 24 * 14] as const;
export const deviceHealthHistoryInput = z.object({
  deviceId: z.uuid(),
  hours: z.literal(HEALTH_WINDOWS_HOURS).default(24),
});

export const deviceHealthHistorySchema = z.object({
  from: z.date(),
  to: z.date(),
  /** Seconds each point stands for; a point covers every check in its bucket. */
  bucketSec: z.number().int(),
  /** How often the health rounds check a device, in seconds. */
  intervalSec: z.number().int(),
  /** Oldest first. */
  points: z.array(
    z.object({
      at: z.date(),
      checks: z.number().int(),
      state: deviceStateSchema,
      load1: z.number().nullable(),
      memoryAvailableBytes: z.number().nullable(),
      diskFreeBytes: z.number().nullable(),
      /** How long the check took: the SSH answer, the probe and the health command. */
      latencyMs: z.number().nullable(),
      error: z.string().nullable(),
    }),
  ),
});

export const deviceHistoryItemSchema = z.object({
  deploymentId: z.uuid(),
  kind: z.string(),
  version: versionRefSchema,
  state: targetStateSchema,
  step: z.string().nullable(),
  error: z.string().nullable(),
  rollback: z.string().nullable(),
  startedAt: z.date().nullable(),
  finishedAt: z.date().nullable(),
  createdAt: z.date(),
});

export const deviceDetailSchema = deviceSummarySchema.extend({
  facts: deviceFactsSchema,
  samples: z.array(healthSampleSchema),
  history: z.array(deviceHistoryItemSchema),
});

export const testConnectionResultSchema = z.object({
  isOk: z.boolean(),
  fingerprint: z.string().nullable(),
  /** True when this test pinned the key (first contact). */
  isNewlyPinned: z.boolean(),
  /** Set when the device offers a key other than the pinned one. */
  offeredFingerprint: z.string().nullable(),
  error: z.string().nullable(),
  facts: deviceFactsSchema.nullable(),
  latencyMs: z.number().nullable(),
});
export type TestConnectionResult = z.infer<typeof testConnectionResultSchema>;

// ---- Rollouts -----------------------------------------------------------------------------

export const strategySchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("all") }),
  z.object({
    kind: z.literal("canary"),
    /** Devices in the first phase. */
    canary: z.number().int().min(1).max(1000),
    /** Devices per phase after the canary. */
    batchSize: z.number().int().min(1).max(1000),
    /** Stop starting new phases once more than this share of finished devices failed. */
    maxFailurePercent: z.number().min(0).max(100).default(0),
  }),
]);
export type Strategy = z.infer<typeof strategySchema>;

export const selectorSchema = z.union([
  z.object({ deviceIds: z.array(z.uuid()).min(1).max(1000) }),
  z.object({ group: labelSchema }),
  z.object({ tag: labelSchema }),
]);
export type Selector = z.infer<typeof selectorSchema>;

/** How far ahead a rollout may be scheduled. */
const MAX_SCHEDULE_AHEAD_MS = 366 * 24 * 3600_000;

export const createRolloutInput = z.object({
  modelVersionId: z.uuid(),
  selector: selectorSchema,
  strategy: strategySchema.default({ kind: "all" }),
  /** Start later, within a year; omitted or past starts now. */
  startAt: z.coerce
    .date()
    .refine((at) => at.getTime() <= Date.now() + MAX_SCHEDULE_AHEAD_MS, "must be within a year from now; schedule the rollout nearer, or start it later by hand")
    .optional(),
});

export const rolloutIdInput = z.object({ deploymentId: z.uuid() });
export const rollbackRolloutInput = z.object({
  deploymentId: z.uuid(),
  /** The version to go back to; default: each device's version before this rollout. */
  modelVersionId: z.uuid().optional(),
});
export const rollbackDeviceInput = z.object({ deviceId: z.uuid(), modelVersionId: z.uuid() });

export const rolloutTargetSchema = z.object({
  id: z.uuid(),
  deviceId: z.uuid(),
  deviceName: z.string(),
  phase: z.number().int(),
  state: targetStateSchema,
  step: z.string().nullable(),
  previousTarget: z.string().nullable(),
  rollback: z.string().nullable(),
  error: z.string().nullable(),
  log: z.string(),
  jobId: z.uuid().nullable(),
  startedAt: z.date().nullable(),
  finishedAt: z.date().nullable(),
});

export const rolloutSummarySchema = z.object({
  id: z.uuid(),
  kind: z.string(),
  status: deploymentStatusSchema,
  version: versionRefSchema,
  strategy: strategySchema,
  selector: selectorSchema,
  startAt: z.date().nullable(),
  error: z.string().nullable(),
  createdAt: z.date(),
  finishedAt: z.date().nullable(),
  counts: z.partialRecord(targetStateSchema, z.number().int()),
});

export const rolloutDetailSchema = rolloutSummarySchema.extend({ targets: z.array(rolloutTargetSchema) });

// ---- Discovery ----------------------------------------------------------------------------

export const discoverInput = z.object({
  /** "10.0.0.0/28", "192.168.1.10-192.168.1.40" or one address. */
  range: z.string().trim().min(1).max(100),
  port: z.number().int().min(1).max(65535).default(22),
  timeoutMs: z.number().int().min(100).max(10_000).default(1500),
});
export const discoveredHostSchema = z.object({ host: z.string(), port: z.number().int(), banner: z.string(), knownDeviceId: z.uuid().nullable() });
