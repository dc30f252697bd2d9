import crypto from "node:crypto";
import { createWriteStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { resolveInside } from "../security/paths";
import { AppError } from "../errors";
import { OutboundConnectError, safeFetch } from "../security/outbound";
import { formatBytes } from "../storage/blob-store";

// A LeRobot dataset on a Hugging Face–compatible hub, brought into a cache folder to be scored.
// The revision is first resolved to its commit, and files are fetched from that commit, so one
// scoring reads one consistent snapshot and records what it read. Only what the metrics read is
// fetched: meta/ (stats aside) and data/ parquet, and the videos when a visual metric is asked
// for. Each file is written beside its final name and renamed into place once whole, so a
// cancelled or failed fetch leaves no half-written file; what did arrive is reused next time.
// The cache is kept under a size: the snapshots used longest ago go first.

export interface HubDatasetOptions {
  endpoint: string;
  repo: string;
  revision: string;
  /** The cache's root; snapshots go in hub/<owner>/<name>/<sha>. */
  cacheDir: string;
  needsVideos: boolean;
  /** MAX_DOWNLOAD_TIMEOUT, for the whole fetch, in milliseconds. */
  timeoutMs: number;
  /** The most one dataset may bring in (DATASET_MAX_IMPORT_BYTES). */
  maxBytes: number;
  /** The most the whole cache may hold once this snapshot is in. */
  maxCacheBytes: number;
  signal: AbortSignal;
  onProgress?: (fraction: number, message: string) => void | Promise<void>;
  onLog?: (message: string) => void | Promise<void>;
}

const PARTIAL = ".partial-";

/** Whether the metrics read this file of a dataset repository. */
export function isNeededFile(rel: string, needsVideos: boolean): boolean {
  if (rel.startsWith("meta/")) return /\.(json|jsonl|parquet)$/.test(rel) && !/stats/.test(path.posix.basename(rel));
  if (rel.startsWith("data/")) return rel.endsWith(".parquet");
  return needsVideos && rel.startsWith("videos/") && rel.endsWith(".mp4");
}

const isSafeRel = (rel: string) => rel.length > 0 && rel.length <= 1000 && !rel.startsWith("/") && !rel.includes("\\") && !/[\u0000-\u001f]/.test(rel) && !rel.split("/").some((p) => p === ".." || p === "." || p === "" || p.includes(PARTIAL));

const enc = (s: string) => s.split("/").map(encodeURIComponent).join("/");

export async function fetchHubDataset(opts: HubDatasetOptions): Promise<{ dir: string; sha: string; files: number; downloaded: number }> {
  const where = `${opts.repo}@${opts.revision}`;
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = AbortSignal.any([opts.signal, timeout]);
  try {
    return await fetchSnapshot(opts, where, signal);
  } catch (error) {
    if (timeout.aborted && !opts.signal.aborted) {
      throw new AppError("INTERNAL", `Fetching ${where} from the hub took longer than MAX_DOWNLOAD_TIMEOUT (${Math.round(opts.timeoutMs / 1000)} s); raise MAX_DOWNLOAD_TIMEOUT, or score fewer metrics (the visual ones fetch the videos)`);
    }
    throw error;
  }
}

async function fetchSnapshot(opts: HubDatasetOptions, where: string, signal: AbortSignal) {
  const base = opts.endpoint.replace(/\/+$/, "");
  const listing = await hubGet(`${base}/api/datasets/${enc(opts.repo)}/revision/${encodeURIComponent(opts.revision)}`, signal, where);
  if (!listing.ok) await refuse(listing, where);
  const body = (await listing.json().catch(() => null)) as { sha?: unknown; siblings?: unknown } | null;
  const sha = typeof body?.sha === "string" && /^[0-9a-f]{7,64}$/.test(body.sha) ? body.sha : null;
  if (!sha || !Array.isArray(body?.siblings)) throw new AppError("BAD_REQUEST", `The hub's answer about ${where} names no commit or files; check that HF_ENDPOINT is a Hugging Face–compatible hub`);
  const names = (body.siblings as { rfilename?: unknown }[]).map((s) => (typeof s?.rfilename === "string" ? s.rfilename : "")).filter((n) => isNeededFile(n, opts.needsVideos));
  const bad = names.find((n) => !isSafeRel(n));
  if (bad) throw new AppError("BAD_REQUEST", `${where} lists a file named ${JSON.stringify(bad).slice(0, 200)}, which cannot be kept on disk safely; it is not scored`);
  if (!names.includes("meta/info.json")) throw new AppError("BAD_REQUEST", `${where} has no meta/info.json: it is not a LeRobot dataset (or it keeps the dataset in a subfolder, which is not supported)`);
  if (!names.some((n) => n.startsWith("data/"))) throw new AppError("BAD_REQUEST", `${where} has no parquet files under data/: the dataset's frames are needed to score it`);

  const [owner, name] = opts.repo.split("/");
  const dir = path.join(opts.cacheDir, "hub", owner, name, sha);
  await fs.mkdir(dir, { recursive: true });
  // The snapshot's mtime says when it was last used: the cache's pruning keeps the recent ones.
  const now = new Date();
  await fs.utimes(dir, now, now);

  // A worker killed mid-file cannot clean up after itself; its leftovers go once surely abandoned.
  await removeStalePartials(dir, Date.now() - 3_600_000);

  // `info.json` first: a dataset whose info.json is damaged stops before its data is fetched.
  names.sort((a, b) => Number(b === "meta/info.json") - Number(a === "meta/info.json") || a.localeCompare(b));
  let bytes = 0;
  let downloaded = 0;
  let reported = 0;
  for (const [i, rel] of names.entries()) {
    signal.throwIfAborted();
    const dest = resolveInside(dir, rel);
    const held = await fs.stat(dest).catch(() => null);
    if (held?.isFile()) {
      bytes += held.size;
    } else {
      bytes += await downloadFile(`${base}/datasets/${enc(opts.repo)}/resolve/${sha}/${enc(rel)}`, dest, { signal, where: `${rel} of ${where}`, budget: opts.maxBytes - bytes });
      downloaded++;
    }
    if (bytes > opts.maxBytes) throw new AppError("BAD_REQUEST", `${where} is larger than the ${formatBytes(opts.maxBytes)} DATASET_MAX_IMPORT_BYTES allows; nothing more was fetched`);
    // A progress row per 2% keeps the log readable for a v2.1 dataset of thousands of files.
    const fraction = (i + 1) / names.length;
    if (fraction - reported >= 0.02 || i === names.length - 1) {
      reported = fraction;
      await opts.onProgress?.(fraction, `${i + 1} of ${names.length} files (${formatBytes(bytes)})`);
    }
  }
  if (downloaded < names.length) await opts.onLog?.(`${names.length - downloaded} of ${names.length} files of ${opts.repo} at ${sha.slice(0, 12)} were already in the cache; not fetched again`);
  await pruneCache(opts.cacheDir, { keep: dir, maxBytes: opts.maxCacheBytes });
  return { dir, sha, files: names.length, downloaded };
}

async function hubGet(url: string, signal: AbortSignal, where: string): Promise<Response> {
  try {
    return await safeFetch(url, { purpose: "dataset-source", signal, redirect: "follow" });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (error instanceof OutboundConnectError) throw new AppError("INTERNAL", `Could not reach the hub for ${where}: ${error.host} did not answer over HTTP; check HF_ENDPOINT and that the hub is up`, { cause: error });
    throw error;
  }
}

async function refuse(response: Response, where: string): Promise<never> {
  await response.body?.cancel();
  const s = response.status;
  if (s === 401 || s === 403 || s === 404 || s === 410) {
    // The hub answers 401 for a repository that does not exist as for a private one.
    throw new AppError("NOT_FOUND", `The hub has no dataset ${where} that Gantry can read (HTTP ${s}); check the id (owner/name) and the revision. Private and gated datasets cannot be scored from the hub: download it into an import folder and score the folder`);
  }
  if (s === 429 || s >= 500) throw new AppError("INTERNAL", `The hub answered HTTP ${s} for ${where}; it will be tried again`);
  throw new AppError("BAD_REQUEST", `The hub answered HTTP ${s} for ${where}`);
}

/** One file, written beside its place and renamed there once whole; nothing is left on failure. */
async function downloadFile(url: string, dest: string, { signal, where, budget }: { signal: AbortSignal; where: string; budget: number }): Promise<number> {
  const response = await hubGet(url, signal, where);
  if (!response.ok) await refuse(response, where);
  if (!response.body) throw new AppError("BAD_REQUEST", `The hub sent nothing for ${where}`);
  const length = Number(response.headers.get("content-length")) || 0;
  if (length > budget) {
    await response.body.cancel();
    throw new AppError("BAD_REQUEST", `${where} would take the dataset past the ${formatBytes(budget)} left of DATASET_MAX_IMPORT_BYTES; nothing more was fetched`);
  }
  await fs.mkdir(path.dirname(dest), { recursive: true });
  const partial = `${dest}${PARTIAL}${crypto.randomBytes(6).toString("hex")}`;
  let received = 0;
  async function* bounded(source: AsyncIterable<Uint8Array>) {
    for await (const chunk of source) {
      received += chunk.length;
      if (received > budget) throw new AppError("BAD_REQUEST", `${where} is larger than the ${formatBytes(budget)} left of DATASET_MAX_IMPORT_BYTES; nothing more was fetched`);
      yield chunk;
    }
  }
  try {
    await pipeline(Readable.fromWeb(response.body as never), bounded, createWriteStream(partial, { flags: "wx" }), { signal });
    await fs.rename(partial, dest);
    return received;
  } catch (error) {
    await fs.rm(partial, { force: true });
    if (signal.aborted) throw signal.reason;
    throw error;
  }
}

async function removeStalePartials(dir: string, before: number): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (!entry.isFile() || !entry.name.includes(PARTIAL)) continue;
    const file = path.join(entry.parentPath, entry.name);
    const stat = await fs.stat(file).catch(() => null);
    if (stat && stat.mtimeMs < before) await fs.rm(file, { force: true });
  }
}

async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) total += (await fs.stat(path.join(entry.parentPath, entry.name)).catch(() => null))?.size ?? 0;
  }
  return total;
}

/** Removes the snapshots used longest ago until the cache holds at most maxBytes (the one in use stays). */
export async function pruneCache(cacheDir: string, { keep, maxBytes }: { keep: string; maxBytes: number }): Promise<string[]> {
  const snapshots: { dir: string; usedAt: number; bytes: number }[] = [];
  const hub = path.join(cacheDir, "hub");
  for (const owner of await fs.readdir(hub).catch(() => [])) {
    for (const name of await fs.readdir(path.join(hub, owner)).catch(() => [])) {
      for (const sha of await fs.readdir(path.join(hub, owner, name)).catch(() => [])) {
        const dir = path.join(hub, owner, name, sha);
        const stat = await fs.stat(dir).catch(() => null);
        if (stat?.isDirectory()) snapshots.push({ dir, usedAt: stat.mtimeMs, bytes: await sizeOf(dir) });
      }
    }
  }
  let total = snapshots.reduce((a, s) => a + s.bytes, 0);
  const removed: string[] = [];
  for (const s of snapshots.sort((a, b) => a.usedAt - b.usedAt)) {
    if (total <= maxBytes) break;
    if (s.dir === keep) continue;
    await fs.rm(s.dir, { recursive: true, force: true });
    total -= s.bytes;
    removed.push(s.dir);
  }
  return removed;
}
