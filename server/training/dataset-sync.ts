import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { AppError } from "../errors";
import type { ProgressReporter } from "../jobs/progress";
import type { SFTPWrapper, Stats } from "ssh2";
import { whileConnected, type SshSession } from "../ssh/ssh-client";
import { quoteShell } from "../ssh/shell-quote";
import { uploadResumable } from "../ssh/sftp-upload";
import { hashFileInto } from "../edge/file-hash";

// A dataset reaches a training host through a content-addressed cache there:
//   <workDir>/cache/<sha256>                         each file once, whatever dataset holds it
//   <workDir>/datasets/<org id>/<repo id>/<build>/   a plain LeRobot v3.0 folder of hard links
// Only files the cache lacks go over the wire, each whole: a build that appends episodes puts
// them in files of their own and leaves every earlier file as it was (see the builder), so an
// append sends the new episodes' files and the metadata; an upload cut off resumes from its
// `.part`; a build already laid out is not touched again.

export interface LocalFile {
  rel: string;
  abs: string;
  bytes: number;
  sha256: string;
}

/** Files sent at once. */
const PARALLEL_UPLOADS = 4;

const SAFE_REL = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

// A file's sum is kept by its identity (device, inode, size, modification time) for the worker's
// life: a build never changes once made, and one that appends links the earlier build's files,
// so the next sync of the same build, or of the build after an append, hashes only new files.
const SUMS_KEPT = 100_000;
const sumsByIdentity = new Map<string, string>();

/**
 * Every file of a built dataset, with its sha256 (links resolved; nothing outside the build).
 * `known` gives the sums the blob store recorded (path → sha256 and size): those are not read.
 */
export async function listDatasetFiles(root: string, { known: recorded }: { known?: Record<string, { sha256: string; bytes: number }> | null } = {}): Promise<LocalFile[]> {
  const base = await fs.realpath(root).catch(() => {
    throw new AppError("CONFLICT", "The dataset has no build to train on yet; wait until an episode is in it");
  });
  const files: LocalFile[] = [];
  const walk = async (dir: string) => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const abs = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(abs);
      else if (entry.isFile()) {
        const rel = path.relative(base, abs).split(path.sep).join("/");
        if (!SAFE_REL.test(rel) || rel.split("/").some((p) => p === "." || p === "..")) throw new AppError("INTERNAL", `The dataset holds a file named ${JSON.stringify(rel)}, which cannot be sent safely`);
        const st = await fs.stat(abs);
        const stored = recorded?.[rel];
        if (stored && stored.bytes === st.size) {
          files.push({ rel, abs, bytes: st.size, sha256: stored.sha256 });
          continue;
        }
        const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
        const known = sumsByIdentity.get(identity);
        if (known) {
          files.push({ rel, abs, bytes: st.size, sha256: known });
          continue;
        }
        const hash = crypto.createHash("sha256");
        const bytes = await hashFileInto(hash, abs);
        const sha256 = hash.digest("hex");
        // Kept only when the file did not change while it was read.
        if (bytes === st.size) sumsByIdentity.set(identity, sha256);
        if (sumsByIdentity.size > SUMS_KEPT) sumsByIdentity.delete(sumsByIdentity.keys().next().value!);
        files.push({ rel, abs, bytes, sha256 });
      }
    }
  };
  await walk(base);
  files.sort((a, b) => a.rel.localeCompare(b.rel));
  return files;
}

export interface SyncResult {
  /** The folder to pass as --dataset.root. */
  remoteRoot: string;
  sentFiles: number;
  sentBytes: number;
  totalBytes: number;
  /** How the folder was laid out: over SFTP alone, or by a command that first checked resumed files (see below); null when it was there already. */
  layout: "sftp" | "command" | null;
}

export async function syncDataset(opts: {
  connect: () => Promise<SshSession>;
  workDir: string;
  orgId: string;
  repoId: string;
  buildId: string;
  files: LocalFile[];
  progress: ProgressReporter;
  signal?: AbortSignal;
  /** Progress spans [from, to] of the whole job. */
  span?: [number, number];
}): Promise<SyncResult> {
  const { workDir, files, progress, signal } = opts;
  const [from, to] = opts.span ?? [0, 1];
  const q = quoteShell;
  const cache = path.posix.join(workDir, "cache");
  const remoteRoot = path.posix.join(workDir, "datasets", opts.orgId, ...opts.repoId.split("/"), opts.buildId);
  const totalBytes = files.reduce((n, f) => n + f.bytes, 0);
  // Every command over SSH starts the user's login shell, which on a GPU host often sets up
  // conda or pyenv and takes a second or more: the checks go through the one SFTP channel the
  // uploads need anyway, and the checking and laying out of the files is one command.
  const session = await opts.connect();
  const sftp = await session.sftp();
  if (await statOf(sftp, path.posix.join(remoteRoot, ".gantry-complete"))) {
    await progress.step(`Dataset already on the host: 0 of ${files.length} files to send`, to);
    return { remoteRoot, sentFiles: 0, sentBytes: 0, totalBytes, layout: null };
  }

  await makeDirs(sftp, cache);
  signal?.throwIfAborted();
  // A file is in the cache when its name is there at its size (a .part is not yet a file).
  const unique = [...new Map(files.map((f) => [f.sha256, f])).values()];
  const present = await whileConnected(session, () => Promise.all(unique.map(async (f) => (await statOf(sftp, path.posix.join(cache, f.sha256)))?.size === f.bytes)));
  const missing = unique.filter((_, i) => !present[i]);
  const missingBytes = missing.reduce((n, f) => n + f.bytes, 0);
  await progress.step(`Syncing the dataset: ${missing.length} of ${files.length} files to send (${(missingBytes / 1e6).toFixed(1)} MB of ${(totalBytes / 1e6).toFixed(1)} MB)`, from);
  // A few files at once over the one SFTP channel: a dataset recorded episode by episode is many
  // small files, and one at a time each waits for its own open, close and rename.
  let sent = 0;
  let lastReport = 0;
  const inFlight = new Map<LocalFile, number>();
  const report = () => {
    const now = Date.now();
    if (now - lastReport < 1000) return;
    lastReport = now;
    const bytes = sent + [...inFlight.values()].reduce((a, b) => a + b, 0);
    void progress.set(from + ((to - from) * 0.9 * bytes) / Math.max(1, missingBytes), `Syncing the dataset: ${(bytes / 1e6).toFixed(1)} of ${(missingBytes / 1e6).toFixed(1)} MB`).catch(() => {});
  };
  const queue = [...missing];
  let resumed = false;
  const sender = async () => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      signal?.throwIfAborted();
      const file = f;
      inFlight.set(file, 0);
      const { resumedFrom } = await uploadResumable({
        connect: opts.connect,
        localPath: file.abs,
        remotePath: path.posix.join(cache, file.sha256),
        signal,
        onProgress: (bytes) => {
          inFlight.set(file, bytes);
          report();
        },
      });
      inFlight.delete(file);
      if (resumedFrom > 0) resumed = true;
      sent += file.bytes;
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, missing.length) }, sender));

  const staging = `${remoteRoot}.part`;
  // The build's folder is hard links into the cache, laid out beside and moved into place. Files
  // sent whole in one go came over SSH's integrity-checked channel and were renamed into the cache
  // only once complete, so the folder is made over SFTP itself, with no command (each starts the
  // host's login shell). A file that was resumed from an earlier try's part is checked against its
  // name on the host first, which needs the command below; so does a server without OpenSSH's
  // hardlink extension, or a folder an earlier try left half-made.
  // A failure half-way falls through to the command too, which starts from a clean folder.
  const layoutSession = await opts.connect();
  const laidOver = !resumed && (await whileConnected(layoutSession, async () => layOutOverSftp(await layoutSession.sftp(), { cache, files, staging, remoteRoot })).catch((error: unknown) => {
    if (signal?.aborted) throw error;
    return false;
  }));
  if (laidOver) {
    await progress.set(to, `Dataset on the host: sent ${missing.length} file(s), ${(sent / 1e6).toFixed(1)} MB`);
    return { remoteRoot, sentFiles: missing.length, sentBytes: sent, totalBytes, layout: "sftp" };
  }

  // One command: the files just sent are checked against their names before anything links to
  // them, then the build's folder is laid out beside (hard links into the cache) and moved into
  // place. Its lists go over SFTP as dot files in the cache, which no cache lookup takes for a file.
  const lists = await opts.connect().then((s) => s.sftp());
  const tag = crypto.randomBytes(6).toString("hex");
  const manifest = path.posix.join(cache, `.sync-${tag}.manifest`);
  const sentList = path.posix.join(cache, `.sync-${tag}.sent`);
  await writeFile(lists, manifest, files.map((f) => `${f.sha256} ${f.rel}`).join("\n") + "\n");
  if (missing.length) await writeFile(lists, sentList, missing.map((f) => f.sha256).join("\n") + "\n");
  signal?.throwIfAborted();
  const script = [
    `cd ${q(cache)} || exit 1`,
    ...(missing.length
      ? [
          `sums=$(xargs sha256sum -- < ${q(sentList)}) || exit 1`,
          `bad=$(printf '%s\\n' "$sums" | awk '$1 != $2 { print $2 }')`,
          `if [ -n "$bad" ]; then rm -f -- $bad ${q(manifest)} ${q(sentList)}; echo "damaged:$bad"; exit 3; fi`,
        ]
      : []),
    `rm -rf ${q(staging)} && mkdir -p ${q(staging)} && cd ${q(staging)} || exit 1`,
    `[ "$(wc -l < ${q(manifest)})" -eq ${files.length} ] || { echo "the list of the dataset's files arrived incomplete" >&2; exit 1; }`,
    // Files come sorted by path, so each folder is made once.
    `last=; while read -r sha rel; do case $rel in */*) d=\${rel%/*}; if [ "$d" != "$last" ]; then mkdir -p -- "$d" || exit 1; last=$d; fi ;; esac; ln -f -- ${q(cache)}/"$sha" "$rel" || exit 1; done < ${q(manifest)}`,
    `touch .gantry-complete && rm -f ${q(manifest)} ${q(sentList)} && rm -rf ${q(remoteRoot)} && mv ${q(staging)} ${q(remoteRoot)}`,
  ].join("\n");
  const laid = await (await opts.connect()).exec(script, { signal, timeoutMs: 600_000 });
  const damaged = /damaged:(\S+)/.exec(laid.stdout)?.[1];
  if (laid.code === 3 && damaged) throw new AppError("INTERNAL", `A dataset file arrived damaged on the host (${damaged.slice(0, 12)}…); the sync will send it again`);
  if (laid.code !== 0) {
    const output = (laid.stderr || laid.stdout).trim().split("\n").slice(-5).join("\n");
    throw new AppError("INTERNAL", `Laying out the dataset folder failed on ${session.target.name} (exit ${laid.code ?? laid.signal})${output ? `: ${output}` : ""}`);
  }
  await progress.set(to, `Dataset on the host: sent ${missing.length} file(s), ${(sent / 1e6).toFixed(1)} MB`);
  return { remoteRoot, sentFiles: missing.length, sentBytes: sent, totalBytes, layout: "command" };
}

function call<T>(fn: (cb: (error: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value))));
}

/** The file's attributes, or null when there is none. */
async function statOf(sftp: SFTPWrapper, remote: string): Promise<Stats | null> {
  try {
    return await call<Stats>((cb) => sftp.stat(remote, cb));
  } catch (error) {
    if ((error as { code?: number }).code === 2) return null; // SSH_FX_NO_SUCH_FILE
    throw error;
  }
}

/**
 * Lays the build's folder out over SFTP: its folders, a hard link into the cache for each file
 * (OpenSSH's hardlink@openssh.com), the completion mark, then one rename into place. False, with
 * nothing made, when the server lacks the extension or an earlier try left a folder behind.
 */
async function layOutOverSftp(sftp: SFTPWrapper, { cache, files, staging, remoteRoot }: { cache: string; files: LocalFile[]; staging: string; remoteRoot: string }): Promise<boolean> {
  // ssh2 keeps the extensions the server announced; it has no public way to ask.
  if ((sftp as unknown as { _extensions?: Record<string, string> })._extensions?.["hardlink@openssh.com"] !== "1") return false;
  if ((await statOf(sftp, staging)) || (await statOf(sftp, remoteRoot))) return false;
  await makeDirs(sftp, path.posix.dirname(staging));
  await call<void>((cb) => sftp.mkdir(staging, cb));
  // Folders level by level (a parent before its children), each level's requests sent at once.
  const dirs = new Set<string>();
  for (const f of files) for (let d = path.posix.dirname(f.rel); d !== "."; d = path.posix.dirname(d)) dirs.add(d);
  const byDepth = new Map<number, string[]>();
  for (const d of dirs) byDepth.set(d.split("/").length, [...(byDepth.get(d.split("/").length) ?? []), d]);
  for (const depth of [...byDepth.keys()].sort((a, b) => a - b)) await Promise.all(byDepth.get(depth)!.map((d) => call<void>((cb) => sftp.mkdir(path.posix.join(staging, d), cb))));
  await Promise.all(files.map((f) => call<void>((cb) => sftp.ext_openssh_hardlink(path.posix.join(cache, f.sha256), path.posix.join(staging, f.rel), cb))));
  await writeFile(sftp, path.posix.join(staging, ".gantry-complete"), "");
  await call<void>((cb) => sftp.rename(staging, remoteRoot, cb));
  return true;
}

/** mkdir -p over SFTP. */
async function makeDirs(sftp: SFTPWrapper, dir: string): Promise<void> {
  if (dir === "/" || (await statOf(sftp, dir))) return;
  await makeDirs(sftp, path.posix.dirname(dir));
  await call<void>((cb) => sftp.mkdir(dir, cb)).catch(async (error: Error) => {
    if (!(await statOf(sftp, dir))?.isDirectory()) throw new AppError("INTERNAL", `Could not make the folder ${dir} on the host: ${error.message}`, { cause: error });
  });
}

function writeFile(sftp: SFTPWrapper, remote: string, content: string): Promise<void> {
  return call<void>((cb) => sftp.writeFile(remote, content, cb));
}
