import type { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { selftestJob } from "../jobs/catalog";
import type { ProgressReporter } from "../jobs/progress";
import { runSystemChecks, type CheckSettings, type SystemCheckResult } from "./selftest-checks";

type SelftestPayload = z.output<typeof selftestJob.payload>;

/**
 * Without `steps`, checks what Gantry needs (database, worker, ffmpeg, onnxruntime, model
 * server, disk, SSH client), one pass or fail line each, and fails naming any that failed.
 * With `steps`, runs that many timed steps instead: a job of known shape for exercising the
 * queue, progress, live stream and cancel.
 */
export async function runSelftest(
  payload: SelftestPayload,
  { db, settings, progress, signal }: { db: Db; settings: CheckSettings; progress: ProgressReporter; signal: AbortSignal },
): Promise<{ steps: number } | { checks: SystemCheckResult[] }> {
  if (payload.steps !== undefined) return runTimedSteps({ ...payload, steps: payload.steps }, { progress, signal });
  const checks = await runSystemChecks({ db, settings, progress, signal });
  const failed = checks.filter((c) => !c.ok);
  if (failed.length) {
    throw new AppError("INTERNAL", `${failed.length} of ${checks.length} checks failed: ${failed.map((c) => c.name).join(", ")} — the log says what each found and what to do`);
  }
  await progress.step(`All ${checks.length} checks passed`, 1);
  return { checks };
}

async function runTimedSteps(payload: SelftestPayload & { steps: number }, { progress, signal }: { progress: ProgressReporter; signal: AbortSignal }): Promise<{ steps: number }> {
  for (let i = 1; i <= payload.steps; i++) {
    signal.throwIfAborted();
    await progress.step(`Step ${i} of ${payload.steps}`, (i - 1) / payload.steps);
    await sleep(payload.stepMs / 2, signal);
    await progress.set((i - 0.5) / payload.steps, `Step ${i} of ${payload.steps}: halfway`);
    await sleep(payload.stepMs / 2, signal);
    if (payload.failAtStep === i) throw new AppError("INTERNAL", `Self-test failed at step ${i} as asked`);
  }
  return { steps: payload.steps };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
