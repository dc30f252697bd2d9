import crypto from "node:crypto";
import path from "node:path";
import type { Readable } from "node:stream";
import * as tus from "tus-js-client";
import { Upload, type DetailedError, type UrlStorage } from "tus-js-client";
import { completeEpisodeOutput, episodeStateSchema, type UploadMode } from "../server/edge/edge.schemas";
import { AgentError, agentHome, type AgentConfig } from "./config";
import { buildEpisodeArchive } from "./archive";
import { encodeEpisodeLocally } from "./encode";
import { episodeFiles, inferFps, type EpisodeOnDisk } from "./layout";
import { portalFetch, portalUrl } from "./portal";
import { formatBytes, type Progress } from "./progress";

// One episode, one tus upload of its archive (archive.ts). tus-js-client remembers the upload's
// URL in the agent's folder under a fingerprint of the episode's content, so a run that was cut
// off — network or process — picks up at the byte the portal last stored.

// The Node build ships a file-backed URL storage that its type declarations do not mention.
const { FileUrlStorage } = tus as unknown as { FileUrlStorage: new (file: string) => UrlStorage };

const CHUNK_BYTES = 512 * 1024 * 1024;
const RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10_000, 20_000, 30_000];

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

const statusOf = (error: unknown) => (error as DetailedError).originalResponse?.getStatus?.() ?? 0;
const bodyOf = (error: unknown) => (error as DetailedError).originalResponse?.getBody?.()?.trim() ?? "";

export async function uploadEpisode(opts: UploadOptions): Promise<UploadResult> {
  const started = Date.now();
  const { episode, repoId, mode, progress } = opts;
  const label = `${repoId} episode ${episode.index}`;
  if (!episode.data) throw new AgentError(`Episode ${episode.index} has no data/episode-<n>.jsonl or .parquet file (timestamps, state, action) yet; is it still recording?`);
  if (!opts.force) {
    const { status } = episodeStateSchema.parse(await portalFetch(opts.config, `api/edge/episodes?${new URLSearchParams({ repoId, episodeIndex: String(episode.index) })}`));
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

  const storage = new FileUrlStorage(path.join(agentHome(), "uploads.json"));
  const fingerprint = `gantry-episode:${opts.config.portal}:${repoId}:${episode.index}:${archive.contentKey}`;
  let resumedAt = 0;

  let sending: Readable | null = null;
  await new Promise<void>((resolve, reject) => {
    const upload: Upload = new Upload(Buffer.alloc(0), {
      endpoint: portalUrl(opts.config, "api/edge/uploads"),
      headers: { authorization: `Bearer ${opts.config.token}` },
      metadata: { format: archive.manifest.format, repoId, episodeIndex: String(episode.index), mode, manifestSha256: archive.manifestSha256, filename: `episode-${episode.index}.tar` },
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS_MS,
      // Refusals (bad archive, disk full, too large, no right) do not get better by retrying.
      onShouldRetry: (error) => {
        const status = statusOf(error);
        return status === 0 || status === 409 || status === 423 || (status >= 500 && status !== 507);
      },
      urlStorage: storage,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      fingerprint: async () => fingerprint,
      fileReader: {
        openFile: async () => ({
          size: archive.size,
          slice: async (start: number, end: number) => {
            // A request cut short leaves its stream behind: it is closed when the next one starts.
            sending?.destroy();
            sending = archive.range(start, end);
            // The request only pipes the stream, which drops its errors (a file that changed or
            // vanished): they end the upload here instead.
            sending.once("error", (error) => {
              void upload.abort();
              reject(error);
            });
            return { value: sending, done: end >= archive.size };
          },
          close: () => sending?.destroy(),
        }),
      },
      onUploadUrlAvailable: () => {
        progress.start(`${label}: uploading`, archive.size, "bytes");
      },
      onProgress: (sent) => progress.update(sent),
      // The offset the portal reports when an earlier upload is resumed, for the summary.
      onAfterResponse: (req, res) => {
        if (req.getMethod() === "HEAD") resumedAt = Number(res.getHeader("Upload-Offset")) || 0;
      },
      onSuccess: () => resolve(),
      onError: (error) => reject(error),
    });
    upload
      .findPreviousUploads()
      .then((previous) => {
        if (previous.length) {
          upload.resumeFromPreviousUpload(previous[0]);
        }
        upload.start();
      })
      .catch(reject);
  }).catch(async (error: unknown) => {
    progress.stop();
    if (error instanceof AgentError) throw error;
    const status = statusOf(error);
    if (status >= 400 && status < 500 && status !== 409 && status !== 423) {
      // The portal rejected this upload: the next try must start a new one, not resume it.
      for (const previous of await storage.findUploadsByFingerprint(fingerprint).catch(() => [])) await storage.removeUpload(previous.urlStorageKey).catch(() => {});
    }
    if (status) throw new AgentError(`The portal refused ${label} (HTTP ${status}): ${bodyOf(error) || (error as Error).message}`);
    throw new AgentError(`Uploading ${label} failed: ${(error as Error).message.split("\n")[0]}; run the command again to resume where it stopped`);
  });
  const seconds = (Date.now() - started) / 1000;
  progress.stop(`${files.length} files, ${formatBytes(archive.size)} in ${seconds.toFixed(1)} s${resumedAt ? ` (resumed at ${formatBytes(resumedAt)})` : ""}`);

  const done = completeEpisodeOutput.parse(await portalFetch(opts.config, "api/edge/episodes", { method: "POST", body: { repoId, episodeIndex: episode.index, task: opts.task, fps, mode } }));
  progress.log(`${label}: ${done.alreadyRegistered ? "was already registered; nothing new to encode" : "queued for encoding"}`);
  return { episodeIndex: episode.index, files: files.length, bytes: archive.size, seconds, resumedAt, alreadyRegistered: done.alreadyRegistered, manifestSha256: archive.manifestSha256, skipped: false };
}
