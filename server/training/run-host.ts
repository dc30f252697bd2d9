import path from "node:path";
import { quoteShell } from "../ssh/shell-quote";
import { isStoredStep } from "./command";

// What a run is on its host: a folder that describes itself, so the portal, the worker and the
// SSH connection can come and go while training goes on.
//
//   <workDir>/runs/<run id>/attempt-<n>/
//     train.sh     the environment activation and the rendered command
//     wrapper.sh   started with setsid nohup; records pid, boot_id and, at the end, exit_code
//     train.log    stdout and stderr, followed by byte offset
//   <workDir>/runs/<run id>/output[-<n>]/   LeRobot's output_dir (checkpoints/<step>/, last)
//
// The wrapper is started with a marker argument (gantry-run-<id>-<attempt>) that is looked for
// in /proc/<pid>/cmdline: a pid reused by another process after a reboot is never taken for
// the run.

export interface RunPaths {
  runDir: string;
  attemptDir: string;
  outputDir: string;
  marker: string;
}

export function runPaths(workDir: string, runId: string, attempt: number, outputDir?: string | null): RunPaths {
  const runDir = path.posix.join(workDir, "runs", runId);
  return { runDir, attemptDir: path.posix.join(runDir, `attempt-${attempt}`), outputDir: outputDir ?? path.posix.join(runDir, "output"), marker: `gantry-run-${runId}-${attempt}` };
}

export function trainScript({ activate, command }: { activate: string; command: string }): string {
  return ["#!/bin/bash", "# The training command of a Gantry run.", activate ? `${activate} || exit 97` : "", `exec ${command}`, ""].filter((l, i, a) => l !== "" || i === a.length - 1).join("\n");
}

export function wrapperScript(): string {
  return `#!/bin/bash
# Runs train.sh detached from any SSH session and records how it ended. $1 is the run marker.
cd -- "$(dirname -- "$0")" || exit 1
echo $$ > pid.tmp && mv -f pid.tmp pid
cat /proc/sys/kernel/random/boot_id > boot_id 2>/dev/null
bash ./train.sh >> train.log 2>&1 < /dev/null &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
wait "$child"; code=$?
# A trap ends the first wait early: wait until the trainer itself has ended.
while kill -0 "$child" 2>/dev/null; do wait "$child"; code=$?; done
echo "$code" > exit_code.tmp && mv -f exit_code.tmp exit_code
`;
}

/**
 * Writes the attempt's scripts and starts the wrapper in a session of its own (its pid is the
 * process group), detached — one command, so a launch costs one round trip.
 */
export function launchCommand(p: RunPaths, scripts: { train: string; wrapper: string }): string {
  const wrapper = path.posix.join(p.attemptDir, "wrapper.sh");
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  // Only the wrapper goes to the background: were the whole && list backgrounded, it would hold
  // the SSH channel open for as long as training runs.
  return `mkdir -p ${quoteShell(p.attemptDir)} && cd ${quoteShell(p.attemptDir)} && echo ${b64(scripts.train)} | base64 -d > train.sh && echo ${b64(scripts.wrapper)} | base64 -d > wrapper.sh && chmod 755 train.sh wrapper.sh || exit 1; setsid nohup bash ${quoteShell(wrapper)} ${quoteShell(p.marker)} > /dev/null 2>&1 < /dev/null & sleep 0.2; for i in $(seq 50); do [ -s ${quoteShell(path.posix.join(p.attemptDir, "pid"))} ] && exit 0; sleep 0.1; done; echo "the run did not start" >&2; exit 1`;
}

/** The most log bytes read in one poll. */
export const POLL_LOG_BYTES = 512 * 1024;

/** One command that says where the run stands and returns the log bytes after `offset`. */
export function pollCommand(p: RunPaths, offset: number, maxBytes = POLL_LOG_BYTES): string {
  const q = quoteShell;
  const last = path.posix.join(p.outputDir, "checkpoints", "last", "training_state", "training_step.json");
  return [
    `cd ${q(p.attemptDir)} 2>/dev/null || { echo "missing:1"; exit 0; }`,
    `pid=$(cat pid 2>/dev/null)`,
    `alive=0; if [ -n "$pid" ] && tr '\\0' ' ' < /proc/"$pid"/cmdline 2>/dev/null | grep -qF -- ${q(p.marker)}; then alive=1; fi`,
    `echo "alive:$alive"; echo "pid:$pid"`,
    `echo "exit:$(cat exit_code 2>/dev/null)"`,
    `echo "boot:$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"; echo "runboot:$(cat boot_id 2>/dev/null)"`,
    `echo "size:$(stat -c %s train.log 2>/dev/null || echo 0)"`,
    `echo "ckpt:$(tr -d '\\n' < ${q(last)} 2>/dev/null)"`,
    checkpointsLine(p),
    `echo "gpu:$(nvidia-smi --query-gpu=utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits 2>/dev/null | head -n1)"`,
    `echo "log:$(tail -c +${offset + 1} train.log 2>/dev/null | head -c ${maxBytes} | base64 -w0)"`,
  ].join("\n");
}

/** The steps of the checkpoints in the output folder (LeRobot names them checkpoints/<zero-padded step>). */
export function checkpointsLine(p: RunPaths): string {
  return `echo "ckpts:$(ls -1 ${quoteShell(path.posix.join(p.outputDir, "checkpoints"))} 2>/dev/null | grep -E '^[0-9]{1,12}$' | tail -n 200 | tr '\\n' ' ')"`;
}

export function parseCheckpointSteps(line: string): number[] {
  return [...new Set(line.split(/\s+/).filter((x) => /^\d{1,12}$/.test(x)).map(Number).filter(isStoredStep))].sort((a, b) => a - b);
}

export interface PollResult {
  isMissing: boolean;
  isAlive: boolean;
  pid: number | null;
  exitCode: number | null;
  bootId: string;
  runBootId: string;
  logSize: number;
  checkpointStep: number | null;
  /** Every checkpoint the output folder holds, by step. */
  checkpointSteps: number[];
  gpu: { util: number; memUsedMiB: number; memTotalMiB: number } | null;
  log: Buffer;
}

export function parsePoll(output: string): PollResult {
  const get = (key: string) => output.split("\n").find((l) => l.startsWith(`${key}:`))?.slice(key.length + 1).trim() ?? "";
  const int = (v: string) => (/^-?\d+$/.test(v) ? Number(v) : null);
  let checkpointStep: number | null = null;
  try {
    const parsed = JSON.parse(get("ckpt") || "null") as { step?: unknown } | null;
    if (parsed && typeof parsed.step === "number" && isStoredStep(parsed.step)) checkpointStep = parsed.step;
  } catch {
    /* a checkpoint being written: read again next time */
  }
  const gpuParts = get("gpu").split(",").map((x) => Number(x.trim()));
  return {
    isMissing: get("missing") === "1",
    isAlive: get("alive") === "1",
    pid: int(get("pid")),
    exitCode: int(get("exit")),
    bootId: get("boot"),
    runBootId: get("runboot"),
    logSize: int(get("size")) ?? 0,
    checkpointStep,
    checkpointSteps: parseCheckpointSteps(get("ckpts")),
    gpu: gpuParts.length === 3 && gpuParts.every(Number.isFinite) ? { util: gpuParts[0], memUsedMiB: gpuParts[1], memTotalMiB: gpuParts[2] } : null,
    log: Buffer.from(get("log"), "base64"),
  };
}

/** Why a run that exited 0 is still not complete: its last checkpoint is not at the final step. */
export function unfinishedReason(checkpointStep: number | null, steps: number): string {
  return checkpointStep === null
    ? `Training exited 0 but wrote no checkpoint (checkpoints/last is missing); it is not called complete`
    : `Training exited 0 but its last checkpoint is at step ${checkpointStep} of ${steps}; it is not called complete. Resume it to go on from there`;
}

/** Stops the run's process group: TERM, up to `graceS` seconds, then KILL; prints what is left. */
export function stopCommand(pid: number, graceS: number): string {
  // Processes of the run's session (setsid made the wrapper its leader) still running: an
  // exited one waiting for its parent (or a slow init) to reap it (state Z) is not "left".
  const running = `ps -o pid=,stat= --sid ${pid} 2>/dev/null | awk '$2 !~ /^Z/ {print $1}'`;
  return `kill -TERM -- -${pid} 2>/dev/null; for i in $(seq ${graceS * 5}); do [ -n "$(${running})" ] || break; sleep 0.2; done; if [ -n "$(${running})" ]; then echo killed; kill -KILL -- -${pid} 2>/dev/null; for i in $(seq 25); do [ -n "$(${running})" ] || break; sleep 0.2; done; fi; echo "left:$(${running} | tr '\\n' ' ')"`;
}
