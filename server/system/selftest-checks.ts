import fs from "node:fs/promises";
import { constants } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import type { Db } from "../db";
import type { Env } from "../env";
import type { ProgressReporter } from "../jobs/progress";
import { freeDiskBytes, formatBytes } from "../edge/disk.service";
import { listEncoders, mediaTools } from "../media/ffmpeg";
import { encodeModel } from "../models/onnx-proto";
import { validateOnnxFile } from "../models/validation.service";
import { runOwned } from "../process/owned-child";
import { serveInternalUrl } from "../serving/try-it.service";
import { checkHealth } from "./health.service";
import { checkSshLoopback } from "./ssh-loopback";

// What the self-test checks: each thing Gantry needs to do its work, tried for real (a query,
// a short encode, a model run in the validation process, an SSH handshake), each ending in one
// pass or fail line that names it and says what to do when it fails.

export type CheckSettings = Pick<
  Env,
  | "FFMPEG_PATH"
  | "FFPROBE_PATH"
  | "EDGE_ENCODE_CODEC"
  | "SERVE_HOST"
  | "SERVE_PORT"
  | "BLOB_DIR"
  | "DATASETS_DIR"
  | "EDGE_UPLOAD_DIR"
  | "EDGE_MIN_FREE_DISK_BYTES"
  | "WORKER_STALE_AFTER_MS"
>;

export interface SystemCheckResult {
  name: string;
  ok: boolean;
  /** What was found, or what is wrong and what to do. */
  detail: string;
}

interface CheckContext {
  db: Db;
  settings: CheckSettings;
  signal: AbortSignal;
}

interface SystemCheck {
  name: string;
  /** The job's step while it runs. */
  step: string;
  timeoutMs: number;
  /** Resolves with what it found; throws with what is wrong. */
  run: (ctx: CheckContext) => Promise<string>;
}

const require = createRequire(import.meta.url);
const packageVersion = (name: string): string => {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return "";
  }
};

const elapsedMs = (since: number) => Math.max(1, Math.round(performance.now() - since));

async function withTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-selftest-"));
  try {
    return await work(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function checkDatabase({ db }: CheckContext): Promise<string> {
  const started = performance.now();
  const [row] = await db.$queryRaw<{ version: string; queue: boolean }[]>`
    SELECT current_setting('server_version') AS "version", to_regclass('graphile_worker._private_jobs') IS NOT NULL AS "queue"`;
  const ms = elapsedMs(started);
  if (!row.queue) throw new Error(`PostgreSQL ${row.version.split(" ")[0]} answers, but the job queue's tables are missing — run npm start (or npm run db:migrate) to set them up`);
  return `PostgreSQL ${row.version.split(" ")[0]} answered in ${ms} ms; the job queue's tables are there`;
}

async function checkWorker({ db, settings }: CheckContext): Promise<string> {
  const health = await checkHealth(db, { staleAfterMs: settings.WORKER_STALE_AFTER_MS });
  if (!health.worker.ok) throw new Error("No worker has reported in recently — start one with npm start (or npm start -- --only worker)");
  if (!health.jobs.ok) throw new Error(health.jobs.problems.join(" "));
  const n = health.worker.workers;
  return `${n} worker${n === 1 ? "" : "s"} reporting in; no job is stuck`;
}

async function checkFfmpeg({ settings, signal }: CheckContext): Promise<string> {
  const tools = mediaTools(settings);
  for (const [tool, file, setting] of [["ffmpeg", tools.ffmpeg, "FFMPEG_PATH"], ["ffprobe", tools.ffprobe, "FFPROBE_PATH"]] as const) {
    await fs.access(file, constants.X_OK).catch(() => {
      throw new Error(`There is no ${tool} Gantry can run at ${file} — install ffmpeg (it brings ffprobe), or point ${setting} at one`);
    });
  }
  const version = /ffmpeg version (\S+)/.exec((await runOwned(tools.ffmpeg, ["-hide_banner", "-version"], { signal })).stdout)?.[1] ?? "(unknown version)";
  const encoders = await listEncoders(tools.ffmpeg);
  if (!encoders.has("libx264")) throw new Error(`ffmpeg ${version} at ${tools.ffmpeg} has no libx264 encoder, which episodes are encoded with — install an ffmpeg built with it, or point FFMPEG_PATH at one`);
  // A few frames through the real encoder and back through ffprobe: a broken build fails here.
  const frames = await withTempDir(async (dir) => {
    const clip = path.join(dir, "check.mp4");
    await runOwned(tools.ffmpeg, ["-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "5", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-y", clip], { signal }).catch((error: Error & { stderr?: string }) => {
      throw new Error(`ffmpeg ${version} could not encode a test clip with libx264: ${(error.stderr ?? error.message).trim().split("\n").pop()}`);
    });
    const probe = await runOwned(tools.ffprobe, ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", clip], { signal }).catch((error: Error) => {
      throw new Error(`ffprobe at ${tools.ffprobe} could not read the test clip back (${error.message}) — install ffprobe with ffmpeg, or set FFPROBE_PATH`);
    });
    const stream = (JSON.parse(probe.stdout) as { streams?: { codec_name?: string; nb_read_frames?: string }[] }).streams?.[0];
    if (stream?.codec_name !== "h264" || Number(stream.nb_read_frames) !== 5) throw new Error(`ffprobe read back ${stream?.nb_read_frames ?? "no"} ${stream?.codec_name ?? ""} frames of the 5-frame H.264 test clip`);
    return 5;
  });
  const av1 = encoders.has("libsvtav1") ? "libsvtav1 is there too" : settings.EDGE_ENCODE_CODEC === "av1" ? "no libsvtav1, so episodes are encoded H.264 although EDGE_ENCODE_CODEC=av1" : "no libsvtav1 (only needed for EDGE_ENCODE_CODEC=av1)";
  return `ffmpeg ${version} (${tools.ffmpeg}) encoded ${frames} test frames with libx264 and ffprobe read them back; ${av1}`;
}

/** y = x + x on a 1×4 float tensor: the smallest model that proves a session loads and runs. */
function doublingModel(): Buffer {
  const tensor = { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 1 }, { dim_value: 4 }] } } };
  return encodeModel({
    ir_version: 8,
    opset_import: [{ domain: "", version: 17 }],
    producer_name: "gantry-selftest",
    graph: { name: "double", node: [{ op_type: "Add", input: ["x", "x"], output: ["y"] }], input: [{ name: "x", type: tensor }], output: [{ name: "y", type: tensor }] },
  });
}

async function checkOnnxruntime({ signal }: CheckContext): Promise<string> {
  // In the same kind of child process model validation uses, so a broken native library cannot take the worker down.
  const report = await withTempDir(async (dir) => {
    const file = path.join(dir, "double.onnx");
    await fs.writeFile(file, doublingModel());
    return validateOnnxFile({ file, runs: 3, timeoutMs: 60_000, signal, testVector: { inputs: { x: [[1, 2, 3, 4]] }, outputs: { y: [[2, 4, 6, 8]] }, tolerance: 1e-6 } });
  });
  if (!report.ok) throw new Error(`onnxruntime could not run a test model: ${report.problems.join(" ")} — reinstall with npm install (onnxruntime-node ships its native library)`);
  if (!report.testVector?.ok) throw new Error(`onnxruntime ran a test model but gave the wrong outputs: ${report.testVector?.problems.join(" ")} — reinstall with npm install (onnxruntime-node ships its native library)`);
  return `onnxruntime-node ${packageVersion("onnxruntime-node")} loaded a test model and ran it in the validation process (warm-up ${Math.round(report.warmupMs ?? 0)} ms), with the outputs expected`;
}

async function checkModelServer({ settings, signal }: CheckContext): Promise<string> {
  const url = `${serveInternalUrl(settings)}/v2/health/ready`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(5_000)]) });
  } catch (error) {
    signal.throwIfAborted();
    const reason = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new Error(`Nothing answered at ${url} (${reason}) — npm start runs the model server beside the portal; check that it is running and that SERVE_HOST and SERVE_PORT point at it`);
  }
  const body = (await response.json().catch(() => null)) as { ready?: boolean; error?: string } | null;
  if (response.status !== 200 || body?.ready !== true) throw new Error(`The model server at ${serveInternalUrl(settings)} is not ready (HTTP ${response.status}${body?.error ? `: ${body.error}` : ""})`);
  return `ready at ${serveInternalUrl(settings)}`;
}

async function checkDiskSpace({ settings }: CheckContext): Promise<string> {
  const places = [
    { what: "blobs", dir: settings.BLOB_DIR },
    { what: "datasets", dir: settings.DATASETS_DIR },
    { what: "edge uploads", dir: settings.EDGE_UPLOAD_DIR },
  ];
  const minimum = settings.EDGE_MIN_FREE_DISK_BYTES;
  const found: { what: string; free: number; dev: number }[] = [];
  for (const { what, dir } of places) {
    const free = await freeDiskBytes(dir);
    // Written and removed: a folder Gantry cannot write to fails here, not in the middle of a job.
    const probe = path.join(dir, `.selftest-${process.pid}-${Date.now()}`);
    await fs.writeFile(probe, "ok").catch((error: NodeJS.ErrnoException) => {
      throw new Error(`Gantry cannot write to its ${what} folder ${dir} (${error.code ?? error.message}) — give the user Gantry runs as write access to it`);
    });
    await fs.rm(probe, { force: true });
    found.push({ what, free, dev: (await fs.stat(dir)).dev });
  }
  const low = found.filter((f) => f.free < minimum);
  if (low.length) {
    throw new Error(`${low.map((f) => `${formatBytes(f.free)} free for ${f.what}`).join(", ")}: less than the ${formatBytes(minimum)} below which edge uploads are refused (EDGE_MIN_FREE_DISK_BYTES) — free some space or give Gantry a bigger disk`);
  }
  const disks = new Map<number, { free: number; whats: string[] }>();
  for (const f of found) disks.set(f.dev, { free: f.free, whats: [...(disks.get(f.dev)?.whats ?? []), f.what] });
  const list = [...disks.values()].map((d) => `${formatBytes(d.free)} free for ${d.whats.join(", ")}`).join("; ");
  return `${list}; all writable (edge uploads stop below ${formatBytes(minimum)})`;
}

async function checkSshClient({ signal }: CheckContext): Promise<string> {
  const { kex, cipher, ms } = await checkSshLoopback({ signal });
  return `ssh2 ${packageVersion("ssh2")} connected to a throwaway SSH server on loopback (${kex}, ${cipher}), signed in with an ed25519 key and ran a command in ${ms} ms — what Gantry does with devices and GPU hosts`;
}

const CHECKS: SystemCheck[] = [
  { name: "Database", step: "Checking the database", timeoutMs: 10_000, run: checkDatabase },
  { name: "Worker", step: "Checking the worker", timeoutMs: 10_000, run: checkWorker },
  { name: "ffmpeg and encoders", step: "Checking ffmpeg and its encoders", timeoutMs: 30_000, run: checkFfmpeg },
  { name: "onnxruntime", step: "Checking onnxruntime", timeoutMs: 70_000, run: checkOnnxruntime },
  { name: "Model server", step: "Checking the model server", timeoutMs: 10_000, run: checkModelServer },
  { name: "Disk space", step: "Checking disk space", timeoutMs: 10_000, run: checkDiskSpace },
  { name: "SSH client", step: "Checking the SSH client", timeoutMs: 15_000, run: checkSshClient },
];

/** The names of the checks, in the order they run. */
export const SYSTEM_CHECK_NAMES = CHECKS.map((c) => c.name);

/** The line each check leaves in the job's log. */
export function checkLine(result: SystemCheckResult): string {
  return `${result.name}: ${result.ok ? "pass" : "fail"} — ${result.detail}`;
}

/**
 * Runs every check in turn, one job step each, and logs a pass or fail line for each. A check
 * that fails does not stop the others; cancelling does.
 */
export async function runSystemChecks({ db, settings, progress, signal }: CheckContext & { progress: ProgressReporter }): Promise<SystemCheckResult[]> {
  const results: SystemCheckResult[] = [];
  for (const [i, check] of CHECKS.entries()) {
    signal.throwIfAborted();
    await progress.step(check.step, i / CHECKS.length);
    const timeout = AbortSignal.timeout(check.timeoutMs);
    const checkSignal = AbortSignal.any([signal, timeout]);
    let result: SystemCheckResult;
    try {
      const detail = await raceAbort(check.run({ db, settings, signal: checkSignal }), checkSignal);
      result = { name: check.name, ok: true, detail };
    } catch (error) {
      signal.throwIfAborted();
      const detail = timeout.aborted ? `No answer within ${check.timeoutMs / 1000} s` : error instanceof Error ? error.message : String(error);
      result = { name: check.name, ok: false, detail };
    }
    results.push(result);
    await progress.log(checkLine(result), result.ok ? "info" : "error");
  }
  return results;
}

/** Settles with `work`, or rejects as soon as `signal` aborts (a check that ignores it still ends). */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
