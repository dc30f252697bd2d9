import { Readable } from "node:stream";
import type { BlobStore, StoredBlob } from "../storage/blob-store";
import { formatBytes, parseSha256 } from "../storage/blob-store";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { AppError, isAppError } from "../errors";
import type { Db } from "../db";
import { validateModelJob } from "../jobs/catalog";
import { isInterrupted } from "../jobs/cancellation";
import { enqueue } from "../jobs/enqueue";
import type { ProgressReporter } from "../jobs/progress";
import { OutboundConnectError, safeFetch } from "../security/outbound";
import { openBytes, sealBytes } from "../security/secret-box";
import { versionSourceSchema } from "./models.schemas";
import { urlToFetch } from "./source-url";

// Downloads of model files: a plain http(s) URL, or a file in a Hugging Face–compatible hub.
// Both stream straight into the blob store, report progress from Content-Length, stop at
// MAX_DOWNLOAD_TIMEOUT and never hold a file in memory. Every request, and every redirect,
// goes through the outbound policy (server/security/outbound.ts).

export interface DownloadOptions {
  blobs: BlobStore;
  /** MAX_DOWNLOAD_TIMEOUT, in milliseconds. */
  timeoutMs: number;
  maxBytes?: number;
  signal?: AbortSignal;
  onProgress?: (fraction: number, message: string) => void | Promise<void>;
}

export interface HubFile {
  endpoint: string;
  repo: string;
  revision: string;
  filename: string;
  /** Sent as `Authorization: Bearer` to the hub only; never stored, never logged. */
  token?: string;
}

export function hubResolveUrl({ endpoint, repo, revision, filename }: Omit<HubFile, "token">): string {
  const enc = (s: string) => s.split("/").map(encodeURIComponent).join("/");
  return `${endpoint.replace(/\/+$/, "")}/${enc(repo)}/resolve/${enc(revision)}/${enc(filename)}`;
}

/** Downloads an http(s) URL into the blob store, following redirects. */
export async function downloadUrl(url: string, opts: DownloadOptions): Promise<StoredBlob> {
  const where = describeUrl(url);
  return withDownloadTimeout(opts, where, async (signal) => {
    const response = await request(url, { signal, redirect: "follow" }, where);
    await checkResponse(response, where, false);
    return storeBody(response, where, { ...opts, signal });
  });
}

/**
 * Downloads a file from a Hugging Face–compatible hub. The resolve URL answers with a redirect
 * to the content (a CDN on the real hub) and, for large files, the sha256 in X-Linked-Etag; a
 * file already in the cache under that digest is not downloaded again. Files land in the
 * cache (content-addressed, under HUGGINGFACE_CACHE_DIR) and are copied to the blob store.
 */
export async function downloadFromHub(file: HubFile, opts: DownloadOptions & { cacheDir: string }): Promise<StoredBlob & { isCached: boolean }> {
  const cache = createLocalBlobStore({ root: opts.cacheDir });
  const where = `${file.filename} in ${file.repo}@${file.revision}`;
  const resolveUrl = hubResolveUrl(file);
  const auth: Record<string, string> = file.token ? { authorization: `Bearer ${file.token}` } : {};

  const cached = await withDownloadTimeout(opts, where, async (signal) => {
    let url = resolveUrl;
    for (let hops = 0; ; hops++) {
      if (hops > 10) throw new AppError("BAD_REQUEST", `The hub redirected ${where} more than 10 times; check HF_ENDPOINT`);
      // The token goes to the hub itself, never to the host it redirects to (a CDN's URL is signed).
      const isHub = new URL(url).origin === new URL(resolveUrl).origin;
      const response = await request(url, { signal, redirect: "manual", headers: isHub ? auth : {} }, where);
      const linked = linkedSha256(response);
      if (linked && (await cache.has(linked))) {
        await response.body?.cancel();
        return { sha256: linked, bytes: (await cache.stat(linked))!.bytes, isCached: true };
      }
      if (response.status >= 300 && response.status < 400 && response.headers.get("location")) {
        await response.body?.cancel();
        url = new URL(response.headers.get("location")!, url).toString();
        continue;
      }
      await checkResponse(response, where, true);
      const stored = await storeBody(response, where, { ...opts, blobs: cache, signal }, linked ?? undefined);
      return { ...stored, isCached: false };
    }
  });
  const stored = await opts.blobs.put(await cache.get(cached.sha256), { expectedSha256: cached.sha256, signal: opts.signal });
  return { ...stored, isCached: cached.isCached };
}

/** The sha256 a hub names for an LFS file, when it names one. */
function linkedSha256(response: Response): string | null {
  const tag = (response.headers.get("x-linked-etag") ?? "").replace(/^W\//, "").replace(/"/g, "");
  return /^[0-9a-f]{64}$/.test(tag) ? tag : null;
}

async function request(url: string, init: { signal: AbortSignal; redirect: "follow" | "manual"; headers?: Record<string, string> }, where: string): Promise<Response> {
  try {
    return await safeFetch(url, { ...init, purpose: "model-source" });
  } catch (error) {
    if (init.signal.aborted) throw init.signal.reason;
    // One message for a refused, reset, timed-out or non-HTTP connection: the reason would tell
    // an open port from a closed one.
    if (error instanceof OutboundConnectError) {
      throw new AppError("INTERNAL", `Could not download ${where}: ${error.host} did not answer with the file (the connection failed or timed out, or what answered was not HTTP); check the address and that the server is up`, { cause: error });
    }
    throw error;
  }
}

async function checkResponse(response: Response, where: string, isHub: boolean): Promise<void> {
  if (response.ok) return;
  await response.body?.cancel();
  const s = response.status;
  if (s === 401 || s === 403) {
    throw new AppError("BAD_REQUEST", isHub ? `The hub refused access to ${where} (HTTP ${s}); for a private or gated repository, add a token that can read it` : `The server refused to send ${where} (HTTP ${s}); use an address that needs no sign-in`);
  }
  if (s === 404 || s === 410) {
    throw new AppError("NOT_FOUND", isHub ? `The hub has no ${where} (HTTP ${s}); check the repository, revision and file name` : `There is nothing at ${where} (HTTP ${s}); check the address`);
  }
  if (s === 429 || s >= 500) throw new AppError("INTERNAL", `Downloading ${where} failed with HTTP ${s}; it will be tried again`);
  throw new AppError("BAD_REQUEST", `Downloading ${where} failed with HTTP ${s}`);
}

async function storeBody(response: Response, where: string, opts: DownloadOptions, expectedSha256?: string): Promise<StoredBlob> {
  if (!response.body) throw new AppError("BAD_REQUEST", `${where} answered with no content`);
  const total = Number(response.headers.get("content-length")) || 0;
  if (opts.maxBytes !== undefined && total > opts.maxBytes) {
    await response.body.cancel();
    throw new AppError("BAD_REQUEST", `${where} is ${formatBytes(total)}, more than the ${formatBytes(opts.maxBytes)} MODEL_MAX_UPLOAD_BYTES allows`);
  }
  const onProgress = opts.onProgress;
  let received = 0;
  let reported = 0;
  let pending: Promise<void> | void = undefined;
  async function* counted(source: AsyncIterable<Uint8Array>) {
    for await (const chunk of source) {
      received += chunk.length;
      // A progress row per 2% (or per 8 MiB without a length) keeps the log readable.
      const isDue = total ? (received - reported) / total >= 0.02 : received - reported >= 8 * 1024 * 1024;
      if (onProgress && isDue) {
        reported = received;
        await pending;
        pending = onProgress(total ? received / total : 0, total ? `${formatBytes(received)} of ${formatBytes(total)}` : `${formatBytes(received)} so far`);
      }
      yield chunk;
    }
  }
  try {
    const stored = await opts.blobs.put(counted(Readable.fromWeb(response.body as never)), { maxBytes: opts.maxBytes, expectedSha256, signal: opts.signal });
    await pending;
    return stored;
  } catch (error) {
    if (isAppError(error) && /larger than/.test(error.message) && opts.maxBytes !== undefined) {
      throw new AppError("BAD_REQUEST", `${where} is larger than the ${formatBytes(opts.maxBytes)} MODEL_MAX_UPLOAD_BYTES allows; nothing was stored`);
    }
    throw error;
  }
}

/** Runs a download under MAX_DOWNLOAD_TIMEOUT; a timeout fails with a message naming it. */
async function withDownloadTimeout<T>(opts: DownloadOptions, where: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  try {
    return await run(signal);
  } catch (error) {
    if (timeout.aborted && !opts.signal?.aborted) {
      throw new AppError("INTERNAL", `Downloading ${where} took longer than MAX_DOWNLOAD_TIMEOUT (${Math.round(opts.timeoutMs / 1000)} s); raise MAX_DOWNLOAD_TIMEOUT or use a faster source`);
    }
    throw error;
  }
}

/** An address as it may be shown: no credentials, no query (signed URLs carry secrets there). */
export function describeUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

// A hub token travels from the request to the worker sealed (AES-256-GCM with ENCRYPTION_KEY)
// in the blob store, which every process shares, and is deleted once the fetch ends: the
// database and the job's payload hold only the sealed blob's digest.

export async function sealToken(blobs: BlobStore, token: string, key: string): Promise<string> {
  return (await blobs.put(Readable.from([sealBytes(token, key)]))).sha256;
}

export async function openToken(blobs: BlobStore, sha256: string, key: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await blobs.get(parseSha256(sha256))) chunks.push(chunk as Buffer);
  return openBytes(Buffer.concat(chunks), key).toString("utf8");
}

// ---- The fetch job -----------------------------------------------------------------------

/**
 * Brings a url or hub version's file into the blob store, then enqueues its validation in the
 * same transaction that records the file. Idempotent: a version already fetched is left alone.
 * On the last attempt (or a failure that would repeat) the version is marked failed.
 */
export async function fetchModelVersion(
  db: Db,
  opts: {
    versionId: string;
    orgId: string;
    createdById: string | null;
    dims: Record<string, number>;
    credential?: string;
    blobs: BlobStore;
    secretKey: string;
    cacheDir: string;
    timeoutMs: number;
    maxBytes: number;
    isLastAttempt: boolean;
    progress: ProgressReporter;
    signal: AbortSignal;
  },
): Promise<{ sha256: string; bytes: number; validateJobId: string } | { skipped: true }> {
  const version = await db.modelVersion.findFirst({ where: { id: opts.versionId, orgId: opts.orgId }, include: { model: true } });
  if (!version) throw new AppError("NOT_FOUND", "The model version to fetch no longer exists; it was deleted");
  // A retry of a fetch that failed before any file arrived fetches again; anything else is done.
  const isRetry = version.status === "failed" && !version.sha256;
  if (version.status !== "fetching" && !isRetry) return { skipped: true };
  if (isRetry) await db.modelVersion.update({ where: { id: version.id }, data: { status: "fetching", error: null } });
  const label = `version ${version.number} of ${version.model.name}`;
  const source = versionSourceSchema.parse(version.source);
  const onProgress = (fraction: number, message: string) => opts.progress.set(0.05 + 0.9 * fraction, message);
  const download = { blobs: opts.blobs, timeoutMs: opts.timeoutMs, maxBytes: opts.maxBytes, signal: opts.signal, onProgress };
  let isFinished = false;
  try {
    let blob: StoredBlob;
    if (source.kind === "url") {
      await opts.progress.step(`Downloading ${describeUrl(source.url)}`, 0.05);
      blob = await downloadUrl(urlToFetch(source, opts.secretKey), download);
    } else if (source.kind === "hub") {
      await opts.progress.step(`Downloading ${source.filename} from ${source.repo}@${source.revision}`, 0.05);
      const token = opts.credential ? await openCredential(opts.blobs, opts.credential, opts.secretKey) : undefined;
      const got = await downloadFromHub({ ...source, token }, { ...download, cacheDir: opts.cacheDir });
      if (got.isCached) await opts.progress.log(`Found ${source.filename} (${got.sha256.slice(0, 12)}…) in the hub cache; not downloaded again`);
      blob = got;
    } else {
      throw new AppError("BAD_REQUEST", `${label} was uploaded; there is nothing to fetch`);
    }
    const result = await db.$transaction(async (tx) => {
      const { jobId } = await enqueue(validateModelJob, { versionId: version.id, dims: opts.dims }, { tx, orgId: opts.orgId, createdById: opts.createdById });
      await tx.modelVersion.update({ where: { id: version.id }, data: { status: "validating", sha256: blob.sha256, bytes: BigInt(blob.bytes), jobId, error: null } });
      return { sha256: blob.sha256, bytes: blob.bytes, validateJobId: jobId };
    });
    await opts.progress.log(`Fetched ${formatBytes(blob.bytes)} (sha256 ${blob.sha256}); validation is queued`);
    isFinished = true;
    return result;
  } catch (error) {
    // Its worker is stopping: the download starts again when the job resumes.
    if (isInterrupted(opts.signal)) throw error;
    const isPermanent = isAppError(error) && error.code !== "INTERNAL" && error.code !== "RATE_LIMITED";
    if (opts.signal.aborted || isPermanent || opts.isLastAttempt) {
      isFinished = true;
      const message = opts.signal.aborted ? "The download was cancelled; add the version again to fetch it" : error instanceof Error ? error.message : String(error);
      await db.modelVersion.update({ where: { id: version.id }, data: { status: "failed", error: message } });
    }
    throw error;
  } finally {
    if (opts.credential && isFinished) await opts.blobs.delete(opts.credential);
  }
}

async function openCredential(blobs: BlobStore, sha256: string, key: string): Promise<string> {
  if (!(await blobs.has(sha256))) {
    throw new AppError("BAD_REQUEST", "The hub token for this download is no longer kept (it is deleted once a fetch ends); add the version again with the token");
  }
  return openToken(blobs, sha256, key);
}
