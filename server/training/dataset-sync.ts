import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { AppError } from "../errors";
import type { ProgressReporter } from "../jobs/progress";
import type { SshSession } from "../ssh/ssh-client";
import { quoteShell } from "../ssh/shell-quote";
import { uploadResumable } from "../ssh/sftp-upload";
import { hashFileInto } from "../edge/file-hash";
import { run, writeHostFile } from "./host";

// A dataset reaches a training host through a content-addressed cache there:
//   <workDir>/cache/<sha256>                         each file once, whatever dataset holds it
//   <workDir>/datasets/<org id>/<repo id>/<build>/   a plain LeRobot v3.0 folder of hard links
// Only files the cache lacks go over the wire (appending an episode sends that episode's
// files and the rewritten metadata, not the dataset); an upload cut off resumes from its
// `.part`; a build already laid out is not touched again.

export interface LocalFile {
  rel: string;
  abs: string;
  bytes: number;
  sha256: string;
}

const SAFE_REL = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/** Every file of a built dataset, with its sha256 (links resolved; nothing outside the build). */
export async function listDatasetFiles(root: string): Promise<LocalFile[]> {
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
        const hash = crypto.createHash("sha256");
        const bytes = await hashFileInto(hash, abs);
        files.push({ rel, abs, bytes, sha256: hash.digest("hex") });
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
  const session = await opts.connect();
  const done = (await run(session, `test -f ${q(path.posix.join(remoteRoot, ".gantry-complete"))} && echo yes || echo no`, { what: "Checking the dataset on the host", signal })).trim();
  if (done === "yes") {
    await progress.step(`Dataset already on the host: 0 of ${files.length} files to send`, to);
    return { remoteRoot, sentFiles: 0, sentBytes: 0, totalBytes };
  }

  const present = new Set((await run(session, `mkdir -p ${q(cache)} && cd ${q(cache)} && ls -1`, { what: "Listing the dataset cache", signal, timeoutMs: 120_000 })).split("\n").filter((n) => /^[0-9a-f]{64}$/.test(n)));
  const missing = [...new Map(files.filter((f) => !present.has(f.sha256)).map((f) => [f.sha256, f])).values()];
  const missingBytes = missing.reduce((n, f) => n + f.bytes, 0);
  await progress.step(`Syncing the dataset: ${missing.length} of ${files.length} files to send (${(missingBytes / 1e6).toFixed(1)} MB of ${(totalBytes / 1e6).toFixed(1)} MB)`, from);
  let sent = 0;
  let lastReport = 0;
  for (const f of missing) {
    signal?.throwIfAborted();
    await uploadResumable({
      connect: opts.connect,
      localPath: f.abs,
      remotePath: path.posix.join(cache, f.sha256),
      signal,
      onProgress: (bytes) => {
        const now = Date.now();
        if (now - lastReport < 1000) return;
        lastReport = now;
        void progress.set(from + ((to - from) * 0.9 * (sent + bytes)) / Math.max(1, missingBytes), `Syncing the dataset: ${((sent + bytes) / 1e6).toFixed(1)} of ${(missingBytes / 1e6).toFixed(1)} MB`).catch(() => {});
      },
    });
    sent += f.bytes;
  }
  // The files just sent are checked against their names before anything links to them.
  if (missing.length) {
    const sums = await run(session, `cd ${q(cache)} && sha256sum ${missing.map((f) => f.sha256).join(" ")}`, { what: "Checking the files sent", signal, timeoutMs: 600_000 });
    for (const line of sums.trim().split("\n")) {
      const [sum, name] = line.trim().split(/\s+/);
      if (sum !== name) {
        await run(session, `rm -f ${q(path.posix.join(cache, name))}`, { what: "Removing a damaged file" }).catch(() => {});
        throw new AppError("INTERNAL", `A dataset file arrived damaged on the host (${name.slice(0, 12)}…); the sync will send it again`);
      }
    }
  }
  // The build's folder: hard links into the cache, laid out beside, then moved into place.
  const staging = `${remoteRoot}.part`;
  const manifest = `${staging}.manifest`;
  await run(session, `rm -rf ${q(staging)} && mkdir -p ${q(staging)}`, { what: "Preparing the dataset folder", signal });
  await writeHostFile(session, manifest, files.map((f) => `${f.sha256} ${f.rel}`).join("\n") + "\n", { signal });
  await run(
    session,
    `cd ${q(staging)} && while read -r sha rel; do mkdir -p -- "$(dirname -- "$rel")" && ln -f -- ${q(cache)}/"$sha" "$rel" || exit 1; done < ${q(manifest)} && touch .gantry-complete && rm -f ${q(manifest)} && rm -rf ${q(remoteRoot)} && mv ${q(staging)} ${q(remoteRoot)}`,
    { what: "Laying out the dataset folder", signal, timeoutMs: 600_000 },
  );
  await progress.set(to, `Dataset on the host: sent ${missing.length} file(s), ${(sent / 1e6).toFixed(1)} MB`);
  return { remoteRoot, sentFiles: missing.length, sentBytes: sent, totalBytes };
}
