import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { z } from "zod";
import { completeEpisodeOutput, episodeStateSchema, type UploadMode } from "../server/edge/edge.schemas";
import { AgentError, agentHome, transferSettings, type AgentConfig, type TransferSettings } from "./config";
import { buildEpisodeArchive } from "./archive";
import { encodeEpisodeLocally } from "./encode";
import { episodeFiles, inferFps, type EpisodeOnDisk } from "./layout";
import { portalFetch, portalUrl } from "./portal";
import { formatBytes, type Progress } from "./progress";
import { isTransient, PortalError } from "./retry";
import { sendTusUpload } from "./tus-client";

// One episode, one tus upload of its archive (archive.ts), sent in requests of at most the chunk
// size (tus-client.ts). The upload's address is kept in the agent's folder under a fingerprint of
// the episode's content, so a run that was cut off — network, portal or agent process — picks up
// at the byte the portal last stored, sending again at most one chunk. Then the episode is
// registered, which is tried again while the portal does not answer or answers 5xx.

/** Uploads begun and not finished, by fingerprint: tus-js-client's file layout, which earlier agents wrote. */
const urlsPath = () => path.join(agentHome(), "uploads.json");
type StoredUpload = { uploadUrl?: unknown; size?: unknown; creationTime?: unknown };
// The portal forgets an unfinished upload after a day.
const FORGET_AFTER_MS = 24 * 60 * 60 * 1000;

function readUploadUrls(): Record<string, StoredUpload> {
  try {
    const json = JSON.parse(fs.readFileSync(urlsPath(), "utf8")) as unknown;
    return json && typeof json === "object" ? (json as Record<string, StoredUpload>) : {};
  } catch {
    return {};
  }
}

function writeUploadUrls(urls: Record<string, StoredUpload>): void {
  fs.mkdirSync(agentHome(), { recursive: true, mode: 0o700 });
  const temp = `${urlsPath()}.${process.pid}.tmp`;
  fs.writeFileSync(temp, JSON.stringify(urls), { mode: 0o600 });
  fs.renameSync(temp, urlsPath());
}

const keyPrefix = (fingerprint: string) => `tus::${fingerprint}::`;

function findUploadUrl(fingerprint: string, size: number): string | null {
  for (const [key, entry] of Object.entries(readUploadUrls())) {
    if (key.startsWith(keyPrefix(fingerprint)) && typeof entry.uploadUrl === "string" && entry.size === size) return entry.uploadUrl;
  }
  return null;
}

function rememberUploadUrl(fingerprint: string, url: string | null, size: number): void {
  const now = Date.now();
  const kept = Object.entries(readUploadUrls()).filter(([key, entry]) => !key.startsWith(keyPrefix(fingerprint)) && now - Date.parse(String(entry.creationTime)) < FORGET_AFTER_MS);
  if (url) kept.push([`${keyPrefix(fingerprint)}agent`, { uploadUrl: url, size, creationTime: new Date(now).toISOString() }]);
  writeUploadUrls(Object.fromEntries(kept));
}

export interface UploadOptions {
  config: AgentConfig;
  root: string;
  episode: EpisodeOnDisk;
  repoId: string;
  mode: UploadMode;
  task?: string;
  fps?: number;
  progress: Progress;
  /** Send it even if the portal already has it (its files are replaced, it is not encoded again). */
  force?: boolean;
  /** Chunk size and retries; from the environment when not given (config.ts). */
  transfer?: TransferSettings;
}

export interface UploadResult {
  episodeIndex: number;
  files: number;
  bytes: number;
  seconds: number;
  resumedAt: number;
  alreadyRegistered: boolean;
  manifestSha256: string | null;
  skipped: boolean;
}

export async function uploadEpisode(opts: UploadOptions): Promise<UploadResult> {
  const started = Date.now();
  const { episode, repoId, mode, progress } = opts;
  const label = `${repoId} episode ${episode.index}`;
  const transfer = opts.transfer ?? transferSettings();
  const retry = (what: string) => ({ what: `${label}: ${what}`, retries: transfer.retries, log: (line: string) => progress.log(line) });
  if (!episode.data) throw new AgentError(`Episode ${episode.index} has no data/episode-<n>.jsonl or .parquet file (timestamps, state, action) yet; is it still recording?`);
  if (!opts.force) {
    const { status } = episodeStateSchema.parse(await portalFetch(opts.config, `api/edge/episodes?${new URLSearchParams({ repoId, episodeIndex: String(episode.index) })}`, { retry: retry("asking the portal whether it has it") }));
    if (status === "encoding" || status === "ready") {
      progress.log(`${label}: the portal already has it (${status === "ready" ? "in the dataset" : "encoding"}); skipped. To replace it, delete it in the portal first or use --force`);
      return { episodeIndex: episode.index, files: 0, bytes: 0, seconds: 0, resumedAt: 0, alreadyRegistered: true, manifestSha256: null, skipped: true };
    }
  }
  const fps = opts.fps ?? inferFps(episode);
  let source = episode;
  if (mode === "local") {
    if (episode.frames.size === 0 && episode.videos.size === 0) throw new AgentError(`Episode ${episode.index} has neither frames nor videos to upload`);
    const outRoot = path.join(agentHome(), "encoded", crypto.createHash("sha256").update(path.resolve(opts.root)).digest("hex").slice(0, 16));
    source = await encodeEpisodeLocally(episode, { outRoot, fps: fps ?? 30, onCamera: (camera) => progress.log(`${label}: encoding ${camera} with the local ffmpeg`) });
  } else if (episode.frames.size === 0) {
    throw new AgentError(`Episode ${episode.index} has no frames under images/<camera>/episode-<n>/ to upload (mode 2 sends raw PNG frames; use --mode 0 for videos)`);
  }
  const files = episodeFiles(source, mode);

  const archive = await buildEpisodeArchive({ repoId, episodeIndex: episode.index, mode, files });

  const fingerprint = `gantry-episode:${opts.config.portal}:${repoId}:${episode.index}:${archive.contentKey}`;
  let isStarted = false;
  let resumedAt = 0;
  try {
    ({ resumedAt } = await sendTusUpload({
      label,
      endpoint: portalUrl(opts.config, "api/edge/uploads"),
      headers: { authorization: `Bearer ${opts.config.token}` },
      metadata: { format: archive.manifest.format, repoId, episodeIndex: String(episode.index), mode, manifestSha256: archive.manifestSha256, filename: `episode-${episode.index}.tar` },
      size: archive.size,
      chunkBytes: transfer.chunkBytes,
      retries: transfer.retries,
      resumeUrl: findUploadUrl(fingerprint, archive.size),
      body: (start, end) => archive.range(start, end),
      onUrl: (url) => rememberUploadUrl(fingerprint, url, archive.size),
      onOffset: (offset) => {
        if (!isStarted) progress.start(`${label}: uploading`, archive.size, "bytes");
        isStarted = true;
        progress.update(offset);
      },
      onSent: (position) => progress.update(position),
      log: (line) => progress.log(`${label}: ${line}`),
    }));
  } catch (error) {
    progress.stop();
    if (isTransient(error)) throw new AgentError(`Uploading ${label} failed: ${error.message}; run the command again to resume where it stopped`);
    // The portal refused this upload: the next try must start a new one, not resume it.
    if (error instanceof PortalError) rememberUploadUrl(fingerprint, null, archive.size);
    throw error;
  }
  const seconds = (Date.now() - started) / 1000;
  progress.stop(`${files.length} files, ${formatBytes(archive.size)} in ${seconds.toFixed(1)} s${resumedAt ? ` (resumed at ${formatBytes(resumedAt)})` : ""}`);

  // Registering twice is harmless: an episode already registered is not queued again. The
  // upload is remembered until it is registered: a run after the portal stayed away finds it
  // complete there (the portal keeps that for a day) and only registers it.
  let done: z.infer<typeof completeEpisodeOutput>;
  try {
    done = completeEpisodeOutput.parse(await portalFetch(opts.config, "api/edge/episodes", { method: "POST", body: { repoId, episodeIndex: episode.index, task: opts.task, fps, mode }, retry: retry("registering it") }));
  } catch (error) {
    if (isTransient(error)) throw new AgentError(`Registering ${label} failed: ${error.message}; its files are on the portal — run the command again to register it without sending them again`);
    rememberUploadUrl(fingerprint, null, archive.size);
    throw error;
  }
  rememberUploadUrl(fingerprint, null, archive.size);
  progress.log(`${label}: ${done.alreadyRegistered ? "was already registered; nothing new to encode" : "queued for encoding"}`);
  return { episodeIndex: episode.index, files: files.length, bytes: archive.size, seconds, resumedAt, alreadyRegistered: done.alreadyRegistered, manifestSha256: archive.manifestSha256, skipped: false };
}
