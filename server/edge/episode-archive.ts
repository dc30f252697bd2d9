import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import tar from "tar-stream";
import { AppError } from "../errors";
import { MANIFEST_NAME, episodeManifestSchema, parseEntryPath, type EpisodeManifest } from "./edge.schemas";

// An episode arrives as one tar stream: the manifest first (every file with its size and
// sha256), then the files. It is checked while it is unpacked: each file is written beside its
// final place, hashed on the way, and moved into place only when every file of the manifest has
// arrived with the right hash. A bad archive leaves nothing behind.

const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
// Files up to this size are gathered in memory and written at once: an episode is mostly
// thousands of small PNGs, for which a write stream each costs more than the bytes.
const BUFFERED_FILE_BYTES = 8 * 1024 * 1024;

const sha256Hex = (data: Buffer | string) => crypto.createHash("sha256").update(data).digest("hex");

/** Checks a manifest against the upload it came with: same episode, allowed names, no repeats. */
export function checkManifest(manifest: EpisodeManifest, expected: { repoId: string; episodeIndex: number; maxBytes: number }): void {
  if (manifest.repoId !== expected.repoId || manifest.episodeIndex !== expected.episodeIndex) {
    throw new AppError("BAD_REQUEST", `The archive's manifest is for ${manifest.repoId} episode ${manifest.episodeIndex}, but the upload said ${expected.repoId} episode ${expected.episodeIndex}`);
  }
  const seen = new Set<string>();
  let total = 0;
  let hasData = false;
  for (const file of manifest.files) {
    const entry = parseEntryPath(file.path);
    if (!entry) throw new AppError("BAD_REQUEST", `"${file.path}" is not a file an episode may contain: expected images/<camera>/episode-<n>/frame-<i>.png, videos/<camera>/episode-<n>.mp4 or data/episode-<n>.jsonl|parquet`);
    if (entry.episodeIndex !== expected.episodeIndex) throw new AppError("BAD_REQUEST", `"${file.path}" belongs to episode ${entry.episodeIndex}, not to episode ${expected.episodeIndex} being uploaded`);
    if (seen.has(file.path)) throw new AppError("BAD_REQUEST", `"${file.path}" is listed twice in the manifest`);
    seen.add(file.path);
    hasData ||= entry.kind === "data";
    total += file.size;
  }
  if (!hasData) throw new AppError("BAD_REQUEST", `Episode ${expected.episodeIndex} has no data/episode-<n>.jsonl or .parquet file with its per-frame timestamps, state and action`);
  if (total > expected.maxBytes) throw new AppError("PAYLOAD_TOO_LARGE", `Episode ${expected.episodeIndex} holds ${total} bytes, more than the ${expected.maxBytes} an upload may (EDGE_MAX_UPLOAD_BYTES)`);
}

/** `name` inside `root`, or an error: defence in depth behind the name patterns. */
function inside(root: string, name: string): string {
  const target = path.resolve(root, name);
  if (!target.startsWith(root + path.sep)) throw new AppError("BAD_REQUEST", `"${name}" would be written outside the episode's folder`);
  return target;
}

export interface ExtractResult {
  files: number;
  bytes: number;
  manifest: EpisodeManifest;
}

/**
 * Unpacks an episode archive into `root` (the repo's raw folder), checking the manifest against
 * `manifestSha256` and every file against the manifest.
 */
export async function extractEpisodeArchive(source: NodeJS.ReadableStream, opts: { root: string; repoId: string; episodeIndex: number; manifestSha256: string; maxBytes: number; tag: string }): Promise<ExtractResult> {
  const root = path.resolve(opts.root);
  const extract = tar.extract();
  const staged: { part: string; final: string }[] = [];
  const createdDirs = new Set<string>();
  let manifest: EpisodeManifest | null = null;
  let byPath = new Map<string, EpisodeManifest["files"][number]>();
  const arrived = new Set<string>();
  let bytes = 0;

  const consume = (async () => {
    for await (const entry of extract) {
      const { name, size = 0, type } = entry.header;
      if (type !== "file") throw new AppError("BAD_REQUEST", `"${name}" in the archive is a ${type}; an episode holds only files`);
      if (!manifest) {
        if (name !== MANIFEST_NAME) throw new AppError("BAD_REQUEST", `The archive must start with ${MANIFEST_NAME}, not "${name}"`);
        if (size > MAX_MANIFEST_BYTES) throw new AppError("BAD_REQUEST", `The archive's manifest is ${size} bytes, more than ${MAX_MANIFEST_BYTES}`);
        const text = await readAll(entry);
        if (sha256Hex(text) !== opts.manifestSha256) throw new AppError("BAD_REQUEST", "The archive's manifest does not match the sha256 the upload announced; upload the episode again");
        const parsed = episodeManifestSchema.safeParse(parseJson(text));
        if (!parsed.success) throw new AppError("BAD_REQUEST", `The archive's manifest is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
        manifest = parsed.data;
        checkManifest(manifest, opts);
        byPath = new Map(manifest.files.map((f) => [f.path, f]));
        continue;
      }
      const listed = byPath.get(name);
      if (!listed) throw new AppError("BAD_REQUEST", `"${name}" is in the archive but not in its manifest`);
      if (arrived.has(name)) throw new AppError("BAD_REQUEST", `"${name}" appears twice in the archive`);
      if (size !== listed.size) throw new AppError("BAD_REQUEST", `"${name}" is ${size} bytes in the archive but ${listed.size} in the manifest`);
      const final = inside(root, name);
      const dir = path.dirname(final);
      if (!createdDirs.has(dir)) {
        await fs.promises.mkdir(dir, { recursive: true });
        createdDirs.add(dir);
      }
      const part = `${final}.part-${opts.tag}`;
      staged.push({ part, final });
      const hash = crypto.createHash("sha256");
      if (size <= BUFFERED_FILE_BYTES) {
        const data = await readAll(entry);
        hash.update(data);
        await fs.promises.writeFile(part, data);
      } else {
        // A large file (an MP4 from a local encode) is hashed and written in one pass.
        await pipeline(entry, new Transform({ transform(chunk: Buffer, _enc, cb) { hash.update(chunk); cb(null, chunk); } }), fs.createWriteStream(part));
      }
      if (hash.digest("hex") !== listed.sha256) throw new AppError("BAD_REQUEST", `"${name}" arrived damaged: its sha256 does not match the manifest; upload the episode again`);
      arrived.add(name);
      bytes += size;
    }
  })();

  try {
    await Promise.all([pipeline(source, extract), consume]);
    if (!manifest) throw new AppError("BAD_REQUEST", "The archive is empty");
    const missing = (manifest as EpisodeManifest).files.filter((f) => !arrived.has(f.path));
    if (missing.length) throw new AppError("BAD_REQUEST", `The archive lacks ${missing.length} file(s) its manifest lists, first "${missing[0].path}"`);
    // Every file checked: move them into place. A rename over an identical earlier upload is harmless.
    for (const { part, final } of staged) await fs.promises.rename(part, final);
    return { files: staged.length, bytes, manifest: manifest as EpisodeManifest };
  } catch (error) {
    extract.destroy();
    await Promise.all(staged.map(({ part }) => fs.promises.rm(part, { force: true })));
    if (error instanceof AppError) throw error;
    throw new AppError("BAD_REQUEST", `The episode archive could not be read: ${(error as Error).message}`, { cause: error });
  }
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function parseJson(text: Buffer): unknown {
  try {
    return JSON.parse(text.toString("utf8"));
  } catch {
    return null;
  }
}
