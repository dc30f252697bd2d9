import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pullManifestSchema, type PullManifest } from "../server/models/version-files.schemas";
import { AgentError, type AgentConfig } from "./config";
import { portalFetch, portalUrl } from "./portal";
import type { Progress } from "./progress";

// `gantry-agent pull-model <repo_id|run>`: a run's checkpoint comes down through the portal,
// file by file, into ~/DoRobot/models/<name>/ (the earlier client's place). Each file is
// written to <file>.part and checked against its sha256 before it takes its name; a download
// cut off goes on from the bytes already in the .part file (an HTTP Range request), and a file
// already in place with the right sum is not fetched again.

export interface PullResult {
  dir: string;
  manifest: PullManifest;
  /** Bytes that came over the wire in this call (a resumed file counts only what was missing). */
  fetchedBytes: number;
  skipped: string[];
}

const ATTEMPTS = 6;

export function defaultModelDir(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^\.+/, "_") || "model";
  return path.join(os.homedir(), "DoRobot", "models", safe);
}

/** The file's place under `dir`; a path from the portal never leaves it. */
export function placeOf(dir: string, rel: string): string {
  const target = path.resolve(dir, rel);
  if (path.isAbsolute(rel) || rel.split(/[\\/]/).some((p) => p === ".." || p === "") || !target.startsWith(path.resolve(dir) + path.sep)) {
    throw new AgentError(`The portal named a file outside the model folder (${JSON.stringify(rel.slice(0, 200))}); nothing was written`);
  }
  return target;
}

async function sha256Of(file: string): Promise<string> {
  const hash = crypto.createHash("sha256");
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export async function pullModel({ config, ref, dir, progress, signal }: { config: Pick<AgentConfig, "portal" | "token">; ref: string; dir?: string; progress?: Progress; signal?: AbortSignal }): Promise<PullResult> {
  const parsed = pullManifestSchema.safeParse(await portalFetch(config, `api/edge/models/${ref.split("/").map(encodeURIComponent).join("/")}`));
  if (!parsed.success) throw new AgentError(`The portal's answer about ${ref} is not one this agent understands; update the agent (gantry-agent --version)`);
  const manifest = parsed.data;
  const root = path.resolve(dir ?? defaultModelDir(manifest.name));
  const places = manifest.files.map((f) => ({ ...f, place: placeOf(root, f.path) }));
  fs.mkdirSync(root, { recursive: true });
  const total = places.reduce((n, f) => n + f.bytes, 0);
  let done = 0;
  let fetchedBytes = 0;
  const skipped: string[] = [];
  progress?.start(`${manifest.model} v${manifest.number}`, total, "bytes");
  for (const f of places) {
    if (fs.existsSync(f.place) && fs.statSync(f.place).size === f.bytes && (await sha256Of(f.place)) === f.sha256) {
      skipped.push(f.path);
      done += f.bytes;
      progress?.update(done);
      continue;
    }
    fs.mkdirSync(path.dirname(f.place), { recursive: true });
    fetchedBytes += await fetchFile(config, f, { signal, onBytes: (n) => progress?.update(done + n) });
    done += f.bytes;
    progress?.update(done);
  }
  fs.writeFileSync(path.join(root, "gantry-model.json"), `${JSON.stringify({ model: manifest.model, version: manifest.number, versionId: manifest.versionId, kind: manifest.kind, run: manifest.run, files: manifest.files.map(({ path: p, sha256, bytes }) => ({ path: p, sha256, bytes })) }, null, 2)}\n`);
  progress?.stop(`${manifest.model} v${manifest.number} (step ${manifest.run.step}) in ${root}`);
  return { dir: root, manifest, fetchedBytes, skipped };
}

/** Downloads one file into place through its .part file; returns the bytes that came over the wire. */
async function fetchFile(config: Pick<AgentConfig, "portal" | "token">, f: { path: string; url: string; sha256: string; bytes: number; place: string }, { signal, onBytes }: { signal?: AbortSignal; onBytes: (n: number) => void }): Promise<number> {
  const part = `${f.place}.part`;
  let fetched = 0;
  for (let attempt = 1; ; attempt++) {
    let have = fs.existsSync(part) ? fs.statSync(part).size : 0;
    if (have > f.bytes) {
      fs.rmSync(part);
      have = 0;
    }
    try {
      if (have < f.bytes) fetched += await fetchRange(config, f, part, have, { signal, onBytes });
      const sum = await sha256Of(part);
      if (sum !== f.sha256) {
        fs.rmSync(part, { force: true });
        throw new AgentError(`${f.path} arrived with sha256 ${sum.slice(0, 12)}…, not the ${f.sha256.slice(0, 12)}… the portal stated; the partial file was removed, run pull-model again`);
      }
      fs.renameSync(part, f.place);
      return fetched;
    } catch (error) {
      if (signal?.aborted || (error instanceof AgentError && !(error as RetryableError).isRetryable) || attempt >= ATTEMPTS) throw error;
      const wait = Math.min(30_000, 500 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      console.error(`gantry-agent: ${f.path}: ${(error as Error).message}; trying again in ${(wait / 1000).toFixed(1)} s (${attempt} of ${ATTEMPTS - 1})`);
      await sleep(wait, undefined, { signal });
    }
  }
}

class RetryableError extends AgentError {
  readonly isRetryable = true;
}

async function fetchRange(config: Pick<AgentConfig, "portal" | "token">, f: { path: string; url: string; bytes: number }, part: string, from: number, { signal, onBytes }: { signal?: AbortSignal; onBytes: (n: number) => void }): Promise<number> {
  let response: Response;
  const range: Record<string, string> = from > 0 ? { range: `bytes=${from}-` } : {};
  let isRedirected = false;
  try {
    const url = portalUrl(config, f.url.replace(/^\//, ""));
    // A large file may come from the portal's object storage: the portal answers with a redirect
    // to a short-lived link, which is followed without the agent's token (it is the portal's alone).
    response = await fetch(url, { headers: { authorization: `Bearer ${config.token}`, ...range }, redirect: "manual", signal });
    const location = response.headers.get("location");
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      const target = new URL(location, url);
      if (target.protocol !== "https:" && target.protocol !== "http:") throw new AgentError(`The portal sent ${f.path} to an address this agent does not fetch from (${target.protocol})`);
      isRedirected = true;
      response = await fetch(target, { headers: target.origin === new URL(url).origin ? { authorization: `Bearer ${config.token}`, ...range } : range, signal });
    }
  } catch (error) {
    if (error instanceof AgentError) throw error;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new RetryableError(`cannot reach the portal at ${config.portal}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
  if (response.status >= 500) throw new RetryableError(`the portal answered HTTP ${response.status}`);
  // A link that expired before the download began: the next attempt asks the portal for a new one.
  if (isRedirected && response.status === 403) throw new RetryableError(`the download link for ${f.path} was refused (expired?)`);
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    let message = text.slice(0, 300);
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
    } catch {
      /* not JSON */
    }
    throw new AgentError(`The portal refused ${f.path} (HTTP ${response.status}): ${message}`);
  }
  // A portal that ignored the range sends the whole file: start the .part again.
  const isResumed = response.status === 206 && from > 0;
  const out = fs.createWriteStream(part, { flags: isResumed ? "a" : "w" });
  let received = 0;
  const base = isResumed ? from : 0;
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once("drain", () => resolve()));
      received += chunk.length;
      onBytes(base + received);
      if (base + received > f.bytes) throw new AgentError(`${f.path} is longer than the ${f.bytes} bytes the portal stated`);
    }
  } catch (error) {
    if (error instanceof AgentError) throw error;
    throw new RetryableError(`the download of ${f.path} was cut off after ${base + received} of ${f.bytes} bytes`);
  } finally {
    await new Promise<void>((resolve) => out.end(resolve));
  }
  return received;
}
