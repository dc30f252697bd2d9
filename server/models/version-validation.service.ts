import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Db } from "../db";
import { AppError } from "../errors";
import { isInterrupted } from "../jobs/cancellation";
import type { ProgressReporter } from "../jobs/progress";
import { Prisma } from "../generated/prisma/client";
import type { BlobStore } from "../storage/blob-store";
import { findVersion } from "./registry.service";
import type { TestVectorOutcome } from "./validation.schemas";

// Checking a version: the validate task's work. The validator is handed in, so this file
// holds what the registry records and the validator what onnxruntime finds.

export interface ValidationReportLike {
  /** The model's own verdict: it loads and runs on generated inputs. */
  ok: boolean;
  opset: number | null;
  producer: string | null;
  signature: unknown;
  problems: string[];
  /** The test vector's outcome, reported beside the model's and never deciding its status. */
  testVector?: TestVectorOutcome | null;
}

export type ValidateOnnxFile = (options: {
  file: string;
  dims: Record<string, number>;
  runs: number;
  testVector?: unknown;
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: (step: string, fraction: number) => void;
}) => Promise<ValidationReportLike>;

/**
 * Materialises the version's file, runs the validator under MODEL_VALIDATION_TIMEOUT and
 * stores what it found: ready when the model passed, invalid with its problems otherwise.
 * A test vector's outcome is kept in the report and logged, but the status is the model's
 * own: a vector that fails never demotes a version that loads and runs.
 */
export async function validateModelVersion(
  db: Db,
  opts: {
    versionId: string;
    orgId: string;
    dims: Record<string, number>;
    runs: number;
    testVectorSha256?: string;
    timeoutMs: number;
    blobs: BlobStore;
    validate: ValidateOnnxFile;
    progress: ProgressReporter;
    signal: AbortSignal;
  },
): Promise<{ status: "ready" | "invalid" }> {
  const version = await findVersion(db, opts.orgId, opts.versionId);
  const label = `version ${version.number} of ${version.model.name}`;
  const fail = async (message: string) => {
    await db.modelVersion.update({ where: { id: version.id }, data: { status: "failed", error: message } });
    return new AppError("BAD_REQUEST", message);
  };
  if (!version.sha256) throw await fail(`${label} has no file to validate`);
  if (version.status !== "validating") await db.modelVersion.update({ where: { id: version.id }, data: { status: "validating", error: null } });
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "gantry-model-"));
  const file = path.join(dir, "model.onnx");
  try {
    await opts.progress.step("Reading the model file", 0.02);
    try {
      await pipeline(await opts.blobs.get(version.sha256), fs.createWriteStream(file), { signal: opts.signal });
    } catch (error) {
      if (opts.signal.aborted) throw error;
      throw await fail(`Could not read the file of ${label}: ${error instanceof Error ? error.message : String(error)}`);
    }
    // A vector that cannot be read is the vector's failure: the model is validated without it.
    let testVector: unknown;
    let vectorUnreadable: string | null = null;
    if (opts.testVectorSha256) {
      try {
        testVector = await readJsonBlob(opts.blobs, opts.testVectorSha256);
      } catch (error) {
        if (opts.signal.aborted) throw error;
        vectorUnreadable = `The test vector could not be read: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
    await opts.progress.step("Validating", 0.1);
    // The timer starts once the file is in place; the validator gets a little longer so that
    // this one, which fails the job and names the setting, is the one that fires.
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    let lastStep = "";
    // The validator's reports are written one after another, and all of them before this
    // returns: a report still on its way when the job finishes would land after "Finished".
    let reports: Promise<unknown> = Promise.resolve();
    const validation = opts.validate({
      file,
      dims: opts.dims,
      runs: opts.runs,
      testVector,
      timeoutMs: opts.timeoutMs + 2000,
      signal: AbortSignal.any([opts.signal, timeout]),
      onProgress: (step, fraction) => {
        if (step === lastStep) return;
        lastStep = step;
        reports = reports.then(() => opts.progress.step(step, 0.1 + 0.85 * fraction)).catch(() => {});
      },
    });
    const timedOut = new Promise<never>((_, reject) => timeout.addEventListener("abort", () => reject(timeout.reason), { once: true }));
    let report: ValidationReportLike;
    try {
      report = await Promise.race([validation, timedOut]);
      await reports;
    } catch (error) {
      await reports;
      if (timeout.aborted && !opts.signal.aborted) {
        validation.catch(() => {});
        throw await fail(`Validating ${label} took longer than MODEL_VALIDATION_TIMEOUT (${Math.round(opts.timeoutMs / 1000)} s); raise MODEL_VALIDATION_TIMEOUT or validate with fewer runs`);
      }
      if (opts.signal.aborted) {
        // Interrupted by its worker stopping, it stays "validating": the job runs it again.
        if (!isInterrupted(opts.signal)) await db.modelVersion.update({ where: { id: version.id }, data: { status: "failed", error: "Validation was cancelled; validate it again to use this version" } });
        throw error;
      }
      throw await fail(`Could not validate ${label}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (vectorUnreadable) report.testVector = { ok: false, maxAbsDiff: null, tolerance: null, problems: [vectorUnreadable] };
    const status = report.ok ? "ready" : "invalid";
    await db.modelVersion.update({
      where: { id: version.id },
      data: {
        status,
        opset: report.opset,
        producer: report.producer,
        signature: (report.signature ?? Prisma.DbNull) as object,
        validation: report as object,
        error: report.ok ? null : report.problems.join("; ") || "The model did not pass validation",
      },
    });
    await opts.progress.log(report.ok ? `${label} is ready` : `${label} is invalid: ${report.problems.join("; ")}`, report.ok ? "info" : "warn");
    const vector = report.testVector;
    if (report.ok && vector && !vector.ok) {
      await opts.progress.log(`The test vector did not pass: ${vector.problems.join("; ")} — ${label} stays ready, as it loads and runs; the report shows the vector's outcome`, "warn");
    }
    // A model that did not pass is the job's outcome, not a success: the job ends failed,
    // saying why, so no list shows a green "succeeded" for it.
    if (!report.ok) throw new AppError("BAD_REQUEST", `${label} is invalid: ${report.problems.join("; ") || "it did not pass validation"}`);
    return { status };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function readJsonBlob(blobs: BlobStore, sha256: string): Promise<unknown> {
  const stat = await blobs.stat(sha256);
  if (!stat) throw new AppError("NOT_FOUND", `The test vector ${sha256} is not in the blob store; upload it again`);
  if (stat.bytes > 256 * 1024 * 1024) throw new AppError("BAD_REQUEST", "The test vector is larger than 256 MiB; use a smaller one");
  const chunks: Buffer[] = [];
  for await (const chunk of await blobs.get(sha256)) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new AppError("BAD_REQUEST", "The test vector is not valid JSON");
  }
}
