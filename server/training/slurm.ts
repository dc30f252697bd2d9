import path from "node:path";
import { quoteShell } from "../ssh/shell-quote";
import { checkpointsLine, POLL_LOG_BYTES, type RunPaths } from "./run-host";

// A run on a Slurm cluster, reached through its login host over SSH. The run folder is the one
// a plain SSH host gets (it must be on a filesystem the compute nodes share); instead of
// wrapper.sh started with setsid nohup, job.sbatch is submitted with `sbatch --parsable` and
// records how training ended in the same exit_code file:
//
//   <attemptDir>/job.sbatch   the batch script (resources, --signal=B:USR1@120, runs train.sh)
//   <attemptDir>/job_id       the job id sbatch answered with
//   <attemptDir>/usr1_at      when Slurm's time-limit warning reached the batch shell
//   <attemptDir>/train.log    the job's --output, followed by byte offset like any log
//
// The job is named after the run marker, so a submission whose answer was lost is found again
// with squeue instead of being submitted twice. Every Slurm client command is wrapped in
// `timeout`: they hang for seconds when slurmctld is down.

export interface SlurmSettings {
  partition: string;
  account: string;
  /** Extra `#SBATCH` options, one per line, e.g. `--gres=gpu:1`. */
  options: string[];
}

/** USR1 to the batch shell 120 s before the time limit, so a run can checkpoint. */
export const TIME_LIMIT_SIGNAL = "B:USR1@120";

/**
 * A value on an `#SBATCH` line. sbatch splits those lines at whitespace, starts a comment at
 * `#` and reads double quotes and backslash escapes; a backslash does not keep a space, quotes do.
 */
function sbatchValue(value: string): string {
  return /[\s"#\\]/.test(value) ? `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"` : value;
}

/** `--comment=two words` stays one option on an #SBATCH line; a value already in quotes is left as written. */
const sbatchOption = (option: string) => {
  const i = option.indexOf("=");
  const value = option.slice(i + 1);
  return i < 0 || /^".*"$/.test(value) ? option : `${option.slice(0, i + 1)}${sbatchValue(value)}`;
};

/** A path in --output: `%` starts one of Slurm's filename patterns, `%%` is a plain %. */
const outputPath = (file: string) => sbatchValue(file.replace(/%/g, "%%"));

export function batchScript(p: RunPaths, slurm: SlurmSettings): string {
  const lines = [
    "#!/bin/bash",
    `#SBATCH --job-name=${p.marker}`,
    `#SBATCH --output=${outputPath(path.posix.join(p.attemptDir, "train.log"))}`,
    "#SBATCH --open-mode=append",
    `#SBATCH --chdir=${sbatchValue(p.attemptDir)}`,
    `#SBATCH --signal=${TIME_LIMIT_SIGNAL}`,
    ...(slurm.partition ? [`#SBATCH --partition=${slurm.partition}`] : []),
    ...(slurm.account ? [`#SBATCH --account=${slurm.account}`] : []),
    ...slurm.options.map((o) => `#SBATCH ${sbatchOption(o)}`),
    `# The Slurm job of a Gantry run: runs train.sh and records how it ended, as wrapper.sh does on
# a plain SSH host. Slurm sends USR1 to this shell only, 120 s before the time limit; it is
# passed on to the trainer so it can save a checkpoint, and noted in usr1_at.
cd -- ${quoteShell(p.attemptDir)} || exit 1
bash ./train.sh < /dev/null &
child=$!
trap 'date +%s > usr1_at; kill -USR1 "$child" 2>/dev/null' USR1
trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
wait "$child"; code=$?
# A trap ends the first wait early: wait until the trainer itself has ended.
while kill -0 "$child" 2>/dev/null; do wait "$child"; code=$?; done
echo "$code" > exit_code.tmp && mv -f exit_code.tmp exit_code
exit "$code"`,
    "",
  ];
  return lines.join("\n");
}

/** Exit codes of the submit command that are not the shell's own. */
export const SUBMIT_REFUSED = 3;
export const SUBMIT_TIMED_OUT = 4;

/**
 * Writes the attempt's scripts and submits the job, unless this attempt already has one (its
 * job_id file, or a job of the marker's name that squeue still knows). Prints `job:<id>`.
 */
export function submitCommand(p: RunPaths, scripts: { train: string; batch: string }): string {
  const q = quoteShell;
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  return [
    `mkdir -p ${q(p.attemptDir)} && cd ${q(p.attemptDir)} || exit 1`,
    `if [ -s job_id ]; then echo "job:$(cat job_id)"; exit 0; fi`,
    `found=$(timeout 30 squeue -h -t all -n ${q(p.marker)} -o %i 2>/dev/null | head -n1)`,
    `if [ -n "$found" ]; then echo "$found" > job_id; echo "job:$found"; exit 0; fi`,
    `echo ${b64(scripts.train)} | base64 -d > train.sh && echo ${b64(scripts.batch)} | base64 -d > job.sbatch && chmod 755 train.sh job.sbatch || exit 1`,
    `out=$(timeout 60 sbatch --parsable job.sbatch ${q(p.marker)} 2>sbatch.err); code=$?`,
    `if [ $code -eq 124 ]; then echo "sbatch did not answer within 60 s" >&2; exit ${SUBMIT_TIMED_OUT}; fi`,
    `if [ $code -ne 0 ] || [ -z "$out" ]; then cat sbatch.err >&2; exit ${SUBMIT_REFUSED}; fi`,
    // --parsable prints "<id>" or "<id>;<cluster>".
    `id=\${out%%;*}; echo "$id" > job_id.tmp && mv -f job_id.tmp job_id && echo "job:$id"`,
  ].join("\n");
}

/** sbatch's complaints that mean "try again later" rather than "this job is refused". */
export function isSubmitTransient(stderr: string): boolean {
  return /Unable to contact slurm controller|Socket timed out|Connection refused|Zero Bytes were transmitted|Resource temporarily unavailable|slurm_persist_conn_open/i.test(stderr);
}

const scontrolCommand = (jobId: string) => `timeout 20 scontrol -o show job ${quoteShell(jobId)}`;
const sacctCommand = (jobId: string) => `timeout 20 sacct -j ${quoteShell(jobId)} -X -n -P -o JobID,State,ExitCode,Reason`;

/** Shell lines that print the job's state from scontrol, and from sacct when scontrol has forgotten it. */
function slurmStateLines(jobId: string): string[] {
  return [
    `sc=$(${scontrolCommand(jobId)} 2>&1); rc=$?`,
    `echo "scontrol_rc:$rc"; echo "scontrol:$(printf '%s' "$sc" | head -n1 | head -c 8000 | base64 -w0)"`,
    `if [ $rc -ne 0 ]; then sa=$(${sacctCommand(jobId)} 2>&1); echo "sacct_rc:$?"; echo "sacct:$(printf '%s' "$sa" | head -n5 | head -c 8000 | base64 -w0)"; fi`,
  ];
}

/**
 * One command: the job's state first (so a job seen ended has written all its log), then the
 * exit code, the last checkpoint's step and the log bytes after `offset`.
 */
export function slurmPollCommand(p: RunPaths, jobId: string, offset: number, maxBytes = POLL_LOG_BYTES): string {
  const q = quoteShell;
  const last = path.posix.join(p.outputDir, "checkpoints", "last", "training_state", "training_step.json");
  return [
    `cd ${q(p.attemptDir)} 2>/dev/null || { echo "missing:1"; exit 0; }`,
    ...slurmStateLines(jobId),
    `echo "exit:$(cat exit_code 2>/dev/null)"`,
    `echo "usr1:$(cat usr1_at 2>/dev/null)"`,
    `echo "size:$(stat -c %s train.log 2>/dev/null || echo 0)"`,
    `echo "ckpt:$(tr -d '\\n' < ${q(last)} 2>/dev/null)"`,
    checkpointsLine(p),
    `echo "log:$(tail -c +${offset + 1} train.log 2>/dev/null | head -c ${maxBytes} | base64 -w0)"`,
  ].join("\n");
}

/** Just the job's state, for waiting on a cancel. */
export function slurmStateCommand(jobId: string): string {
  return slurmStateLines(jobId).join("\n");
}

/** Cancels the attempt's job: by its recorded id, else its job_id file, else its name. Prints `job:<id>` or `job:`. */
export function cancelCommand(p: RunPaths, jobId: string | null): string {
  const q = quoteShell;
  return [
    `id=${jobId ? q(jobId) : `$(cat ${q(path.posix.join(p.attemptDir, "job_id"))} 2>/dev/null)`}`,
    `[ -n "$id" ] || id=$(timeout 30 squeue -h -t all -n ${q(p.marker)} -o %i 2>/dev/null | head -n1)`,
    `echo "job:$id"; [ -n "$id" ] || exit 0`,
    `timeout 30 scancel "$id"`,
  ].join("\n");
}

// ---- What Slurm says, read ----

export type SlurmPhase = "queued" | "running" | "ended" | "unknown";
export type SlurmOutcome = "completed" | "failed" | "cancelled" | "timeout" | "out-of-memory" | "node-fail" | "preempted";

export interface SlurmStateMeaning {
  phase: SlurmPhase;
  outcome: SlurmOutcome | null;
  /** What a person is shown. */
  words: string;
}

const MEANINGS: Record<string, SlurmStateMeaning> = {
  PENDING: { phase: "queued", outcome: null, words: "queued on Slurm" },
  // Nodes being readied (booted, powered up) for a job that has been given them.
  CONFIGURING: { phase: "running", outcome: null, words: "starting on Slurm (its nodes are being readied)" },
  RUNNING: { phase: "running", outcome: null, words: "running on Slurm" },
  // The batch script has ended; Slurm is cleaning up. The final state follows.
  COMPLETING: { phase: "running", outcome: null, words: "ending on Slurm" },
  COMPLETED: { phase: "ended", outcome: "completed", words: "completed" },
  FAILED: { phase: "ended", outcome: "failed", words: "failed (the batch script exited non-zero)" },
  CANCELLED: { phase: "ended", outcome: "cancelled", words: "cancelled" },
  TIMEOUT: { phase: "ended", outcome: "timeout", words: "stopped at its time limit" },
  OUT_OF_MEMORY: { phase: "ended", outcome: "out-of-memory", words: "killed for going over its memory limit" },
  NODE_FAIL: { phase: "ended", outcome: "node-fail", words: "ended by a failure of its node" },
  PREEMPTED: { phase: "ended", outcome: "preempted", words: "preempted by another job" },
};

/**
 * What a Slurm job state means for a run. Only the states listed are interpreted; any other
 * (SUSPENDED, REQUEUED, BOOT_FAIL, a state of a newer Slurm…) is shown as Slurm names it and
 * the run goes on being followed — it is never guessed to be an end.
 */
export function meaningOfSlurmState(state: string): SlurmStateMeaning {
  // sacct writes "CANCELLED by 1000"; squeue may add a "+".
  const name = state.trim().split(/\s+/)[0]?.replace(/\+$/, "").toUpperCase() ?? "";
  return MEANINGS[name] ?? { phase: "unknown", outcome: null, words: `in the state ${name || "(none)"}, which Gantry does not interpret; it goes on following the job` };
}

export interface SlurmJobState {
  /** Where the state came from; "none" when neither scontrol nor sacct knows the job. */
  source: "scontrol" | "sacct" | "none";
  state: string | null;
  reason: string | null;
  /** The batch script's exit code and the signal that ended it, as Slurm recorded them. */
  exit: { code: number; signal: number } | null;
  /** Set when Slurm could not be asked (slurmctld down, a timeout): the state is not known. */
  error: string | null;
}

const exitOf = (text: string | undefined) => {
  const m = /^(\d+):(\d+)$/.exec(text ?? "");
  return m ? { code: Number(m[1]), signal: Number(m[2]) } : null;
};
const reasonOf = (text: string | undefined) => (text && text !== "None" && text !== "(null)" ? text : null);

/** `scontrol -o show job <id>`: one line of Key=Value pairs. */
export function parseScontrolJob(line: string): Pick<SlurmJobState, "state" | "reason" | "exit"> | null {
  const get = (key: string) => new RegExp(`(?:^|\\s)${key}=(\\S*)`).exec(line)?.[1];
  const state = get("JobState");
  if (!state) return null;
  return { state, reason: reasonOf(get("Reason")), exit: exitOf(get("ExitCode")) };
}

/** `sacct -X -n -P -o JobID,State,ExitCode,Reason`: the allocation's line. */
export function parseSacct(output: string): Pick<SlurmJobState, "state" | "reason" | "exit"> | null {
  const line = output.split("\n").find((l) => /^\d+[^|]*\|/.test(l.trim()));
  if (!line) return null;
  const [, state, exit, reason] = line.trim().split("|");
  if (!state) return null;
  return { state, reason: reasonOf(reason), exit: exitOf(exit) };
}

/** Reads the scontrol_rc/scontrol/sacct_rc/sacct lines of a poll. */
export function parseSlurmState(get: (key: string) => string): SlurmJobState {
  const decode = (key: string) => Buffer.from(get(key), "base64").toString("utf8").trim();
  const scontrol = decode("scontrol");
  if (get("scontrol_rc") === "0") {
    const parsed = parseScontrolJob(scontrol);
    if (parsed) return { source: "scontrol", ...parsed, error: null };
    return { source: "none", state: null, reason: null, exit: null, error: `scontrol printed no job state: ${scontrol.slice(0, 200)}` };
  }
  if (!/Invalid job id/i.test(scontrol)) {
    const why = get("scontrol_rc") === "124" ? "scontrol did not answer within 20 s" : scontrol.slice(0, 300) || `scontrol exited ${get("scontrol_rc")}`;
    return { source: "none", state: null, reason: null, exit: null, error: why };
  }
  // scontrol forgets a job MinJobAge (300 s by default) after it ends; accounting remembers it.
  const sacct = decode("sacct");
  const parsed = get("sacct_rc") === "0" ? parseSacct(sacct) : null;
  if (parsed) return { source: "sacct", ...parsed, error: null };
  return { source: "none", state: null, reason: null, exit: null, error: null };
}

/** "PENDING (Resources)" — the state as Slurm names it, for the run page. */
export function describeSlurmState(s: { state: string | null; reason: string | null }): string {
  const meaning = meaningOfSlurmState(s.state ?? "");
  return `${meaning.words}${s.reason ? ` (${s.reason})` : ""}`;
}
