import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";

// The processes Gantry starts for its work (ffmpeg, ffprobe, the model validation process)
// run in a process group of their own: a Ctrl-C at the terminal reaches Gantry's processes,
// which stop their work in order (an interrupted job goes back to the queue), instead of
// reaching every child at once and failing the work under them. On Linux they are also made
// to die with the process that started them (`setpriv --pdeathsig KILL`), so a worker killed
// outright leaves no encoder running on, writing files nobody will use.

let setpriv: string | null | undefined;

/** setpriv when this system's can set the parent-death signal, else null (checked once). */
function parentDeathWrapper(): string | null {
  if (setpriv !== undefined) return setpriv;
  setpriv = null;
  if (process.platform !== "linux") return setpriv;
  for (const candidate of ["/usr/bin/setpriv", "/bin/setpriv"]) {
    const probe = spawnSync(candidate, ["--pdeathsig", "KILL", "--", "true"], { stdio: "ignore" });
    if (probe.status === 0) return (setpriv = candidate);
  }
  return setpriv;
}

/** Spawns `command` in its own process group, dying with this process where the system allows. */
export function spawnOwned(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const wrapper = parentDeathWrapper();
  // setpriv sets the signal and then execs the command: the pid is the command's own.
  return wrapper ? spawn(wrapper, ["--pdeathsig", "KILL", "--", command, ...args], { ...options, detached: true }) : spawn(command, args, { ...options, detached: true });
}

/** Kills an owned child and anything it started (its whole process group). */
export function killOwned(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

export interface OwnedRunResult {
  stdout: string;
  stderr: string;
}

/** Runs an owned child to its end and collects its output (bounded); a non-zero exit rejects with the output attached. */
export function runOwned(command: string, args: string[], { maxBuffer = 4 * 1024 * 1024, signal }: { maxBuffer?: number; signal?: AbortSignal } = {}): Promise<OwnedRunResult> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error("Cancelled"));
    const child = spawnOwned(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      if (stdout.length > maxBuffer) killOwned(child);
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-maxBuffer)));
    const abort = () => killOwned(child);
    signal?.addEventListener("abort", abort, { once: true });
    child.once("error", (error) => {
      signal?.removeEventListener("abort", abort);
      reject(Object.assign(error, { stdout, stderr }));
    });
    child.once("close", (code, exitSignal) => {
      signal?.removeEventListener("abort", abort);
      if (signal?.aborted) return reject(signal.reason ?? new Error("Cancelled"));
      if (code === 0) return resolve({ stdout, stderr });
      const how = exitSignal ? `was killed by ${exitSignal}` : `exited with code ${code}`;
      reject(Object.assign(new Error(`${command} ${how}${stdout.length > maxBuffer ? " (too much output)" : ""}`), { stdout, stderr, code }));
    });
  });
}
