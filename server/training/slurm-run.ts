import { AppError } from "../errors";
import type { SshSession } from "../ssh/ssh-client";
import { parsePoll, unfinishedReason, type PollResult, type RunPaths } from "./run-host";
import {
  cancelCommand,
  isSubmitTransient,
  meaningOfSlurmState,
  parseSlurmState,
  slurmPollCommand,
  slurmStateCommand,
  submitCommand,
  SUBMIT_REFUSED,
  type SlurmJobState,
  type SlurmSettings,
} from "./slurm";

// The Slurm side of a run, over the login host's SSH session: submit, read, judge, cancel.

export const slurmSettingsOf = (json: unknown): SlurmSettings => {
  const s = (json ?? {}) as Partial<SlurmSettings>;
  return { partition: s.partition ?? "", account: s.account ?? "", options: Array.isArray(s.options) ? s.options : [] };
};

const lineGetter = (output: string) => (key: string) => output.split("\n").find((l) => l.startsWith(`${key}:`))?.slice(key.length + 1).trim() ?? "";

/** A refusal by Slurm (a bad partition, account or option): submitting again would not help. */
export class SlurmRefused extends AppError {
  constructor(message: string) {
    super("BAD_REQUEST", message);
  }
}

/** Submits the attempt's job (or finds the one it already has) and returns its id. */
export async function submitSlurmJob(session: SshSession, paths: RunPaths, scripts: { train: string; batch: string }, signal?: AbortSignal): Promise<string> {
  const result = await session.exec(submitCommand(paths, scripts), { timeoutMs: 120_000, signal });
  const jobId = lineGetter(result.stdout)("job");
  if (result.code === 0 && /^\d+(_\d+)?$/.test(jobId)) return jobId;
  const said = (result.stderr || result.stdout).trim().split("\n").slice(-5).join("\n");
  if (result.code === SUBMIT_REFUSED && !isSubmitTransient(said)) throw new SlurmRefused(`Slurm on ${session.target.name} refused the job${said ? `: ${said}` : ""}. Check the target's partition, account and sbatch options`);
  throw new AppError("INTERNAL", `Submitting the job with sbatch on ${session.target.name} failed (exit ${result.code ?? result.signal})${said ? `: ${said}` : ""}`);
}

export type SlurmPoll = PollResult & { slurm: SlurmJobState; usr1At: number | null };

export async function pollSlurmRun(session: SshSession, paths: RunPaths, jobId: string, offset: number, signal?: AbortSignal): Promise<SlurmPoll> {
  const result = await session.exec(slurmPollCommand(paths, jobId, offset), { timeoutMs: 90_000, signal, maxBytes: 2 * 1024 * 1024 });
  if (result.code !== 0) throw new AppError("INTERNAL", `Reading the run's state failed (exit ${result.code}): ${result.stderr.trim().slice(0, 300)}`);
  const get = lineGetter(result.stdout);
  const poll = parsePoll(result.stdout);
  const slurm = parseSlurmState(get);
  if (slurm.error && !poll.isMissing) throw new AppError("INTERNAL", `Slurm on ${session.target.name} did not say how job ${jobId} stands: ${slurm.error}`);
  const usr1 = Number(get("usr1"));
  return { ...poll, slurm, usr1At: get("usr1") && Number.isFinite(usr1) ? usr1 : null };
}

/** Whether the follow loop has seen the job's end: a final state, or a job Slurm no longer knows. */
export const hasSlurmJobEnded = (s: SlurmJobState) => (s.source === "none" && !s.error) || meaningOfSlurmState(s.state ?? "").phase === "ended";

export interface SlurmJudgement {
  status: "succeeded" | "failed" | "cancelled" | "lost";
  exitCode: number | null;
  reason: string | null;
}

/**
 * How an ended job's run ends, honestly: succeeded only for COMPLETED with exit 0 and
 * checkpoints/last at the final step. The exit code is the trainer's (the exit_code file the
 * batch script writes), else Slurm's record of the batch script's.
 */
export function judgeSlurmEnd({ jobId, slurm, exitFile, usr1At, checkpointStep, steps, tail }: { jobId: string; slurm: SlurmJobState; exitFile: number | null; usr1At: number | null; checkpointStep: number | null; steps: number; tail: string }): SlurmJudgement {
  const exitCode = exitFile ?? slurm.exit?.code ?? null;
  const checkpoint = checkpointStep === null ? "; it saved no checkpoint" : `; its last checkpoint is at step ${checkpointStep} of ${steps}`;
  const resume = checkpointStep === null ? "" : ". Resume it to go on from there";
  const logEnds = tail ? `; the log ends:\n${tail}` : "";
  if (slurm.source === "none") {
    return {
      status: "lost",
      exitCode,
      reason: `Slurm no longer knows job ${jobId} (scontrol forgets a job a few minutes after it ends, and sacct has no record of it here), so how it ended cannot be confirmed${exitFile !== null ? `; the batch script recorded exit code ${exitFile}` : ""}${checkpoint}${resume}`,
    };
  }
  const outcome = meaningOfSlurmState(slurm.state ?? "").outcome;
  const named = `Slurm job ${jobId} ended ${slurm.state}`;
  switch (outcome) {
    case "completed":
      if (exitCode !== 0) return { status: "failed", exitCode, reason: `${named} but training exited with code ${exitCode}${logEnds}` };
      if (checkpointStep !== steps) return { status: "failed", exitCode: 0, reason: unfinishedReason(checkpointStep, steps) };
      return { status: "succeeded", exitCode: 0, reason: null };
    case "failed":
      if (usr1At !== null) return { status: "failed", exitCode, reason: `Slurm's warning of job ${jobId}'s time limit (USR1, 120 s before it) was passed to the trainer, which then ended with code ${exitCode}${checkpoint}${resume}, or give the target a longer --time` };
      return { status: "failed", exitCode, reason: `Training exited with code ${exitCode}${logEnds}` };
    case "cancelled":
      return { status: "cancelled", exitCode, reason: `${named}: it was cancelled outside Gantry (scancel, or a cluster admin)${checkpoint}` };
    case "timeout":
      return { status: "failed", exitCode, reason: `${named}: it reached its time limit${checkpoint}${resume}, or give the target a longer --time` };
    case "out-of-memory":
      return { status: "failed", exitCode, reason: `${named}: it went over its memory limit${checkpoint}. Ask for more memory with --mem in the target's Slurm options` };
    case "node-fail":
      return { status: "failed", exitCode, reason: `${named}: its node failed${checkpoint}${resume}` };
    case "preempted":
      return { status: "failed", exitCode, reason: `${named}: it was preempted by another job${checkpoint}${resume}` };
    default:
      return { status: "lost", exitCode, reason: `${named}, a state Gantry does not interpret` };
  }
}

/** scancel, then waits for Slurm to record the end (after its KillWait, processes get KILL). */
export async function cancelSlurmJob(session: SshSession, paths: RunPaths, jobId: string | null, { waitMs }: { waitMs: number }): Promise<{ jobId: string | null; state: string | null }> {
  const out = await session.exec(cancelCommand(paths, jobId), { timeoutMs: 90_000 });
  const id = lineGetter(out.stdout)("job") || null;
  if (!id) return { jobId: null, state: null };
  const scancelSaid = out.code === 0 ? "" : (out.stderr || out.stdout).trim();
  const deadline = Date.now() + waitMs;
  let last: SlurmJobState | null = null;
  for (;;) {
    const result = await session.exec(slurmStateCommand(id), { timeoutMs: 60_000 });
    last = parseSlurmState(lineGetter(result.stdout));
    if (!last.error && hasSlurmJobEnded(last)) return { jobId: id, state: last.state };
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new AppError("INTERNAL", `Slurm job ${id} on ${session.target.name} is still ${last?.state ?? "in an unknown state"}${last?.error ? ` (${last.error})` : ""} after scancel${scancelSaid ? `, which said: ${scancelSaid}` : ""}`);
}
