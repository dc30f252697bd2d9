import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import net from "node:net";
import { z } from "zod";

// The one place settings are read. Every setting is validated at start; a bad one stops
// the process with a message naming it. Secrets missing from the environment are generated
// once into GANTRY_HOME/secrets.json (mode 0600) so a fresh machine needs no set-up.

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

/** "10.1.2.0/24, fd00::/8, 192.0.2.7": addresses or CIDR ranges, separated by commas or spaces. */
const cidrList = z.string().transform((text, ctx) => {
  const items = text.split(/[\s,]+/).filter(Boolean);
  for (const item of items) {
    const [address, bits, extra] = item.split("/");
    const family = net.isIP(address);
    const isValid = family !== 0 && extra === undefined && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)));
    if (!isValid) ctx.addIssue({ code: "custom", message: `"${item}" is not an address or a range such as 10.1.2.0/24 or fd00::/8` });
  }
  return items;
});

const schema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  GANTRY_HOME: z.string().min(1).default(".gantry"),
  PORT: z.coerce.number().int().min(1).max(65535).default(3000),
  PUBLIC_URL: z.url().optional(),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    .optional(),
  EMBEDDED_PG_PORT: z.coerce.number().int().min(1).max(65535).default(54329),
  /** As root in a folder the `postgres` user cannot reach, the embedded cluster and its binaries go here. */
  EMBEDDED_PG_SYSTEM_DIR: z.string().min(1).default("/var/lib/gantry"),
  AUTH_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  ENCRYPTION_KEY: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=$/, "must be 32 bytes, base64-encoded (openssl rand -base64 32)")
    .optional(),
  /** After the first account, new accounts need an invite unless an instance admin opens sign-up. */
  ALLOW_SIGNUP: bool.default(false),
  /** New accounts one network address may make per hour. */
  SIGNUPS_PER_HOUR: z.coerce.number().int().min(1).max(100_000).default(10),
  /**
   * Proxies in front of the portal whose X-Forwarded-For is believed. Without any, a caller's
   * address is the one that connected, whatever the headers say.
   */
  TRUSTED_PROXIES: cidrList.default([]),
  /** Emails of the people who, besides the first account, may see how this instance is installed. */
  INSTANCE_ADMINS: z
    .string()
    .default("")
    .transform((text, ctx) => {
      const emails = text.split(/[\s,]+/).filter(Boolean).map((e) => e.toLowerCase());
      for (const email of emails) if (!z.email().safeParse(email).success) ctx.addIssue({ code: "custom", message: `"${email}" is not an email address` });
      return emails;
    }),
  BLOB_DIR: z.string().min(1).optional(),
  /** Where blobs (model files, checkpoints) are kept: a folder (BLOB_DIR) or an S3-compatible bucket (S3_*). */
  BLOB_STORE: z.enum(["local", "s3"]).default("local"),
  S3_ENDPOINT: z.url().optional(),
  S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "must be a bucket name: 3–63 lowercase letters, digits, dots and dashes").optional(),
  /** us-east-1 unless the service says otherwise (R2: auto). */
  S3_REGION: z.string().min(1).default("us-east-1"),
  /** Bucket in the path (http://host/bucket/key), as MinIO, Garage and Swift want; false for virtual-hosted buckets. */
  S3_FORCE_PATH_STYLE: bool.default(true),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  /** A folder inside the bucket for this instance's objects, e.g. "gantry/". */
  S3_PREFIX: z.string().regex(/^([A-Za-z0-9._-]+\/)*$/, "must be empty or folder names each ending in /").default(""),
  /**
   * Blob downloads at least this large are answered with a redirect to a presigned URL of the
   * bucket (BLOB_STORE=s3), so the bytes do not pass through the portal.
   */
  S3_PRESIGN_MIN_BYTES: z.coerce.number().int().min(0).default(16 * 1024 * 1024),
  /** How long a presigned download link works, in seconds: long enough to start the download, no longer. */
  S3_PRESIGN_TTL_S: z.coerce.number().int().min(1).max(3600).default(300),
  /**
   * The bucket's address as downloaders reach it, when it differs from S3_ENDPOINT (which the
   * portal uses); presigned links name this host.
   */
  S3_PUBLIC_ENDPOINT: z.url().optional(),
  /** The sweep never takes a blob written or kept more recently than this (a writer inserts its row after storing). */
  BLOB_SWEEP_GRACE_S: z.coerce.number().int().min(1800).default(6 * 3600),
  /** Temporary files and unfinished uploads untouched for this long are the sweep's. */
  BLOB_LEFTOVER_AGE_S: z.coerce.number().int().min(3600).default(24 * 3600),
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  WORKER_HEARTBEAT_MS: z.coerce.number().int().min(200).default(5000),
  WORKER_STALE_AFTER_MS: z.coerce.number().int().min(1000).default(30000),
  SSE_HEARTBEAT_MS: z.coerce.number().int().min(100).default(15000),
  /** How often an agent's open stream marks it as seen; an agent not seen for three of these is offline. */
  AGENT_PRESENCE_MS: z.coerce.number().int().min(100).default(10000),
  /** How long a dropped agent may take to reconnect before the commands it was running fail. */
  AGENT_GRACE_MS: z.coerce.number().int().min(0).default(15000),
  SSE_MAX_BUFFERED_EVENTS: z.coerce.number().int().min(10).default(1000),
  /** Largest JSON body a signed-in caller may send to /api/trpc and the JSON route handlers (a test vector may be 16 MiB); uploads have their own limits. */
  API_MAX_BODY_BYTES: z.coerce.number().int().min(64 * 1024).default(20 * 1024 ** 2),
  MODEL_MAX_UPLOAD_BYTES: z.coerce.number().int().min(1024).default(4 * 1024 ** 3),
  MAX_DOWNLOAD_TIMEOUT: z.coerce.number().int().min(1).max(86_400).default(1800),
  MODEL_VALIDATION_TIMEOUT: z.coerce.number().int().min(1).max(3600).default(300),
  MODEL_VALIDATION_RUNS: z.coerce.number().int().min(1).max(10_000).default(20),
  /** Seconds one inference request may take, queueing included, before the model server answers 504. */
  MODEL_INFERENCE_TIMEOUT: z.coerce.number().min(0.001).max(3600).default(30),
  SERVE_PORT: z.coerce.number().int().min(1).max(65535).default(8500),
  /** The model server listens on loopback unless told otherwise. */
  SERVE_HOST: z.string().min(1).default("127.0.0.1"),
  /** Bearer token that lets a scraper read every organisation's series on the model server's /metrics; an API token sees its own organisation's only. */
  SERVE_METRICS_TOKEN: z.string().min(32, "must be at least 32 characters (openssl rand -base64 32)").optional(),
  /**
   * Bearer token that lets a scraper (Prometheus) read the portal's /api/metrics without a
   * session; instance admins signed in may read it too. Unset: only they may.
   */
  METRICS_TOKEN: z.string().min(32, "must be at least 32 characters (openssl rand -base64 32)").optional(),
  /** Seconds between health checks of each device (checks run from a once-a-minute schedule). */
  DEVICE_HEALTH_INTERVAL: z.coerce.number().int().min(5).max(86_400).default(60),
  /** How often a running training run's host is asked for its log and state. */
  TRAINING_POLL_MS: z.coerce.number().int().min(100).max(60_000).default(500),
  /** A host that does not answer this long makes its run "lost" (until then it is "unreachable"). */
  TRAINING_LOST_AFTER_MS: z.coerce.number().int().min(1000).default(600_000),
  /** Seconds between TERM and KILL when a run is cancelled. */
  TRAINING_CANCEL_GRACE_S: z.coerce.number().int().min(1).max(600).default(30),
  /** transactions-api targets: how long the final checkpoint may sit in the model folder while the API still says TRAINING before the folder decides. */
  TRAINING_API_STUCK_AFTER_MS: z.coerce.number().int().min(0).default(600_000),
  /** The most of one attempt's log that is stored; past it a note says the log was cut. */
  TRAINING_LOG_MAX_BYTES: z.coerce.number().int().min(4096).default(64 * 1024 * 1024),
  /** The longest a target's export command (checkpoint → ONNX) may run on the host. */
  TRAINING_EXPORT_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30 * 60_000),
  /** The model directory of a device whose own setting does not name one. */
  MODEL_DIR: z.string().regex(/^\/[^\0\n]*$/, "must be an absolute path").default("/opt/gantry"),
  /** The model server's address as callers reach it, used in the examples the portal shows. */
  SERVE_PUBLIC_URL: z.url().optional(),
  HF_ENDPOINT: z.url().default("https://huggingface.co"),
  HUGGINGFACE_CACHE_DIR: z.string().min(1).optional(),
  /** Where agents put raw episodes (frames, videos, per-frame data), one folder per repo id. */
  EDGE_UPLOAD_DIR: z.string().min(1).optional(),
  /** Where datasets are built, in LeRobot v3.0's layout, one folder per repo id. */
  DATASETS_DIR: z.string().min(1).optional(),
  /** Folders a dataset may be imported from on this server (path-separated list). */
  DATASET_IMPORT_ROOTS: z.string().min(1).optional(),
  /** Largest dataset archive an import may upload, in bytes (unpacked size counts too). */
  DATASET_MAX_IMPORT_BYTES: z.coerce.number().int().min(1024).default(20 * 1024 ** 3),
  /** The most the cache of hub datasets fetched for scoring may hold; the snapshots used longest ago go first. */
  EVALUATION_CACHE_MAX_BYTES: z.coerce.number().int().min(0).default(20 * 1024 ** 3),
  /** ffmpeg and ffprobe to use; default: the system's on PATH (ffmpeg falls back to the bundled one). */
  FFMPEG_PATH: z.string().min(1).optional(),
  FFPROBE_PATH: z.string().min(1).optional(),
  EDGE_ENCODE_CODEC: z.enum(["h264", "av1"]).default("h264"),
  EDGE_ENCODE_PRESET: z.enum(["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]).default("veryfast"),
  EDGE_ENCODE_CRF: z.coerce.number().int().min(0).max(51).default(23),
  /** Largest episode an agent may upload in one go, in bytes (its archive: frames or videos plus data). */
  EDGE_MAX_UPLOAD_BYTES: z.coerce.number().int().min(1024).default(20 * 1024 ** 3),
  /** New edge uploads are refused (507) when they would leave less free disk than this under EDGE_UPLOAD_DIR. */
  EDGE_MIN_FREE_DISK_BYTES: z.coerce.number().int().min(0).default(5 * 1024 ** 3),
  /** Outbound connections may reach this machine's own loopback addresses (127.0.0.0/8, ::1). */
  OUTBOUND_ALLOW_LOOPBACK: bool.default(false),
  /** Model downloads and webhooks may reach private networks (devices and GPU hosts always may). */
  OUTBOUND_ALLOW_PRIVATE: bool.default(false),
  /** Addresses and ranges every outbound connection may reach, whatever kind they are. */
  OUTBOUND_ALLOW_CIDRS: cidrList.default([]),
  /** Largest camera frame (JPEG or PNG) a capture session takes. */
  CAPTURE_MAX_FRAME_BYTES: z.coerce.number().int().min(1024).max(256 * 1024 ** 2).default(8 * 1024 ** 2),
  /** Frames one capture session takes per second (a burst up to this, counted per second); past it, 429. */
  CAPTURE_FRAMES_PER_SECOND: z.coerce.number().int().min(1).max(10_000).default(60),
  /** Joint states one capture session takes per second; past it, 429. */
  CAPTURE_JOINT_STATES_PER_SECOND: z.coerce.number().int().min(1).max(10_000).default(200),
  /** Largest snapshot (PLY or SPZ) a trainer may push; it is held in memory while it is checked and converted. */
  CAPTURE_MAX_SNAPSHOT_BYTES: z.coerce.number().int().min(1024).max(2 * 1024 ** 3 - 1).default(1024 ** 3),
  /** Snapshots kept per session; past it, the oldest go. */
  CAPTURE_MAX_SNAPSHOTS: z.coerce.number().int().min(1).max(100_000).default(200),
  /** A trainer not heard from this long is silent: its lease lapses and another trainer may claim the session. */
  CAPTURE_TRAINER_SILENT_MS: z.coerce.number().int().min(1000).default(30_000),
  FIREBASE_PROJECT_ID: z.string().min(1).optional(),
  FIREBASE_API_KEY: z.string().min(1).optional(),
  FIREBASE_AUTH_DOMAIN: z.string().min(1).optional(),
  /** The emulator accepts unsigned tokens: allowed in production only when asked for. */
  FIREBASE_ALLOW_EMULATOR: bool.default(false),
  FIREBASE_AUTH_EMULATOR_HOST: z
    .string()
    .regex(/^[\w.-]+:\d+$/, "must be host:port, e.g. 127.0.0.1:9099")
    .optional(),
});

const checkedSchema = schema.refine((e) => !(e.FIREBASE_AUTH_EMULATOR_HOST && e.NODE_ENV === "production" && !e.FIREBASE_ALLOW_EMULATOR), {
  path: ["FIREBASE_AUTH_EMULATOR_HOST"],
  message: "turns off the signature check on Firebase tokens; set FIREBASE_ALLOW_EMULATOR=true as well if this really is a test or local install",
}).refine((e) => e.BLOB_STORE !== "s3" || (e.S3_ENDPOINT && e.S3_BUCKET && e.S3_ACCESS_KEY_ID && e.S3_SECRET_ACCESS_KEY), {
  path: ["BLOB_STORE"],
  message: "s3 needs S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY",
}).refine((e) => e.WORKER_STALE_AFTER_MS >= 3 * e.WORKER_HEARTBEAT_MS, {
  path: ["WORKER_STALE_AFTER_MS"],
  message: "must be at least three WORKER_HEARTBEAT_MS, or a busy worker would be taken for dead",
});

export type Env = z.infer<typeof schema> & {
  AUTH_SECRET: string;
  ENCRYPTION_KEY: string;
  BLOB_DIR: string;
  HUGGINGFACE_CACHE_DIR: string;
  EDGE_UPLOAD_DIR: string;
  DATASETS_DIR: string;
  datasetImportRoots: string[];
  PUBLIC_URL: string;
  SERVE_PUBLIC_URL: string;
  isFirebaseEnabled: boolean;
};

export class SettingsError extends Error {}

export function parseEnv(source: Record<string, string | undefined>): Env {
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = checkedSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new SettingsError(`Invalid settings (see .env.example):\n${lines.join("\n")}`);
  }
  const env = parsed.data;
  const home = path.resolve(/*turbopackIgnore: true*/ env.GANTRY_HOME);
  const secrets = env.AUTH_SECRET && env.ENCRYPTION_KEY ? null : loadOrCreateSecrets(home);
  const firebaseKeys = [env.FIREBASE_PROJECT_ID, env.FIREBASE_API_KEY];
  if (firebaseKeys.some(Boolean) && !firebaseKeys.every(Boolean)) {
    throw new SettingsError("Invalid settings: FIREBASE_PROJECT_ID and FIREBASE_API_KEY must be set together");
  }
  return {
    ...env,
    GANTRY_HOME: home,
    AUTH_SECRET: env.AUTH_SECRET ?? secrets!.authSecret,
    ENCRYPTION_KEY: env.ENCRYPTION_KEY ?? secrets!.encryptionKey,
    BLOB_DIR: path.resolve(/*turbopackIgnore: true*/ env.BLOB_DIR ?? path.join(home, "blobs")),
    HUGGINGFACE_CACHE_DIR: path.resolve(/*turbopackIgnore: true*/ env.HUGGINGFACE_CACHE_DIR ?? path.join(home, "hf-cache")),
    EDGE_UPLOAD_DIR: path.resolve(/*turbopackIgnore: true*/ env.EDGE_UPLOAD_DIR ?? path.join(home, "edge-uploads")),
    DATASETS_DIR: path.resolve(/*turbopackIgnore: true*/ env.DATASETS_DIR ?? path.join(home, "datasets")),
    datasetImportRoots: (env.DATASET_IMPORT_ROOTS ?? path.join(home, "imports")).split(path.delimiter).filter(Boolean).map((p) => path.resolve(/*turbopackIgnore: true*/ p)),
    PUBLIC_URL: env.PUBLIC_URL ?? `http://localhost:${env.PORT}`,
    SERVE_PUBLIC_URL: (env.SERVE_PUBLIC_URL ?? `http://localhost:${env.SERVE_PORT}`).replace(/\/+$/, ""),
    isFirebaseEnabled: Boolean(env.FIREBASE_PROJECT_ID && env.FIREBASE_API_KEY),
  };
}

const secretsSchema = z.object({ authSecret: z.string().min(32), encryptionKey: z.string().length(44) });

function loadOrCreateSecrets(home: string): z.infer<typeof secretsSchema> {
  const file = path.join(home, "secrets.json");
  if (fs.existsSync(file)) {
    const parsed = secretsSchema.safeParse(parseJsonOrNull(fs.readFileSync(file, "utf8")));
    if (!parsed.success) throw new SettingsError(`${file} is damaged: remove it to generate new secrets (existing sessions end and encrypted credentials must be re-entered)`);
    return parsed.data;
  }
  // 0755: when running as root, the embedded Postgres runs as its own user and must reach pg/.
  fs.mkdirSync(home, { recursive: true, mode: 0o755 });
  const secrets = {
    authSecret: crypto.randomBytes(32).toString("base64url"),
    encryptionKey: crypto.randomBytes(32).toString("base64"),
  };
  // Written whole to a temp file, then linked into place: a process starting at the same
  // moment sees either no file or the complete one, and the first link wins.
  const temp = `${file}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
  fs.writeFileSync(temp, JSON.stringify(secrets, null, 2) + "\n", { mode: 0o600 });
  try {
    fs.linkSync(temp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return secretsSchema.parse(JSON.parse(fs.readFileSync(file, "utf8")));
  } finally {
    fs.rmSync(temp, { force: true });
  }
  return secrets;
}

// A file cut short (disk full, a crash mid-write) must get the same advice as one with the wrong fields.
function parseJsonOrNull(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

let cached: Env | undefined;

export function env(): Env {
  cached ??= parseEnv(process.env);
  return cached;
}
