import { AppError } from "../errors";
import { sshTargetOfSealed } from "../ssh/sealed-target";
import { connectSsh, type SshSession, type SshTarget } from "../ssh/ssh-client";
import { quoteShell } from "../ssh/shell-quote";

// Reaching a training host: the sealed credential is opened here and nowhere else, the host
// key is pinned, and every path built for the host's shell is absolute and quoted.

export interface TargetRow {
  id: string;
  name: string;
  host: string;
  port: number;
  username: string;
  authKind: string;
  credential: string;
  pinnedHostKey: string | null;
  workDir: string;
}

export function sshTargetOfTrainingHost(target: TargetRow, opts: { pinned?: string | null; timeoutMs?: number } = {}): SshTarget {
  return sshTargetOfSealed(target, { pinned: opts.pinned, timeoutMs: opts.timeoutMs ?? 15_000, purpose: "training-host" });
}

export async function connectTrainingHost(target: TargetRow, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<SshSession> {
  if (!target.pinnedHostKey) throw new AppError("CONFLICT", `${target.name} has not been tested yet, so its host key is not pinned; run "Test target" first`);
  return connectSsh(sshTargetOfTrainingHost(target, { timeoutMs: opts.timeoutMs }), { signal: opts.signal });
}

/** Runs a command and fails, with its output, when it exits non-zero. */
export async function run(session: SshSession, command: string, { what, timeoutMs = 60_000, signal }: { what: string; timeoutMs?: number; signal?: AbortSignal }): Promise<string> {
  const result = await session.exec(command, { timeoutMs, signal });
  if (result.code !== 0) {
    const output = (result.stderr || result.stdout).trim().split("\n").slice(-5).join("\n");
    throw new AppError("INTERNAL", `${what} failed on ${session.target.name} (exit ${result.code ?? result.signal})${output ? `: ${output}` : ""}`);
  }
  return result.stdout;
}

/** The work directory as an absolute path on the host ("~/gantry" → "/home/robot/gantry"). */
export async function resolveWorkDir(session: SshSession, workDir: string, signal?: AbortSignal): Promise<string> {
  const home = (await run(session, "cd && pwd", { what: "Finding the home folder", signal })).trim();
  const dir = workDir.startsWith("~/") ? `${home.replace(/\/$/, "")}/${workDir.slice(2)}` : workDir;
  if (!dir.startsWith("/")) throw new AppError("BAD_REQUEST", `The work directory ${workDir} is not an absolute path on ${session.target.name}`);
  return dir.replace(/\/+$/, "");
}

/** Writes a small file on the host through the shell, atomically (temp file, then rename). */
export async function writeHostFile(session: SshSession, file: string, content: string, { mode = "644", signal }: { mode?: string; signal?: AbortSignal } = {}): Promise<void> {
  const sftp = await session.sftp();
  const tmp = `${file}.tmp-${Date.now()}`;
  await new Promise<void>((resolve, reject) => sftp.writeFile(tmp, content, { mode: parseInt(mode, 8) }, (e) => (e ? reject(e) : resolve())));
  signal?.throwIfAborted();
  await run(session, `mv -f ${quoteShell(tmp)} ${quoteShell(file)}`, { what: "Placing a file", signal });
}
