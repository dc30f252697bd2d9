import type { Readable } from "node:stream";
import { z } from "zod";
import { AppError } from "../errors";

// Blobs are content-addressed: a blob's name is the sha256 of its bytes, so the same file
// uploaded twice is stored once, and a name can be checked against what it names.

export const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, "must be a sha256 digest: 64 lowercase hexadecimal characters");
export type Sha256 = z.infer<typeof sha256Schema>;

export const storedBlobSchema = z.object({ sha256: sha256Schema, bytes: z.number().int().nonnegative() });
export type StoredBlob = z.infer<typeof storedBlobSchema>;

/** A byte range to read; both ends are inclusive offsets, as in an HTTP Range header. */
export const byteRangeSchema = z
  .object({ start: z.number().int().nonnegative().optional(), end: z.number().int().nonnegative().optional() })
  .refine((r) => r.start === undefined || r.end === undefined || r.start <= r.end, { message: "start must not be after end" });
export type ByteRange = z.infer<typeof byteRangeSchema>;

export interface PutOptions {
  /** The digest the sender claims; a mismatch stores nothing and fails with BAD_REQUEST. */
  expectedSha256?: string;
  /** The most bytes to accept; a longer source stores nothing and fails with BAD_REQUEST. */
  maxBytes?: number;
  /** Aborting stops the write, removes the partial file and rejects with the signal's reason. */
  signal?: AbortSignal;
}

export type BlobSource = Readable | AsyncIterable<Uint8Array>;

export interface PresignOptions {
  expiresInS: number;
  fileName?: string;
  /**
   * Served as this media type, to play in the page (an episode's video); otherwise the store
   * serves the bytes as a download of `application/octet-stream`, never rendered.
   */
  media?: "video/mp4";
}

/** A stored blob as a listing sees it; `modifiedAt` is when it was last written or kept. */
export interface ListedBlob {
  sha256: string;
  bytes: number;
  modifiedAt: Date;
}

/** Something a writer left behind: a temporary file or object, or an unfinished multipart upload. */
export interface Leftover {
  /** The file, key or upload, as a person reads it. */
  name: string;
  what: "temporary file" | "temporary object" | "unfinished upload";
  bytes: number;
  modifiedAt: Date;
  /** For an unfinished upload: its upload id and key, and its record's id when it has one. */
  upload?: { uploadId: string; key: string; recordId?: string };
}

export interface BlobStore {
  /** Streams a source in and stores it under its sha256; storing content already present is a no-op. */
  put(source: BlobSource, options?: PutOptions): Promise<StoredBlob>;
  has(sha256: string): Promise<boolean>;
  /** The blob's size, or null when the store does not hold it. */
  stat(sha256: string): Promise<{ bytes: number } | null>;
  /** Streams a blob, or the inclusive byte range of it; NOT_FOUND when absent. */
  get(sha256: string, range?: ByteRange): Promise<Readable>;
  /** Removes a blob; removing one that is absent is not an error. */
  delete(sha256: string): Promise<void>;
  /**
   * Whether the store holds the blob; if so it counts as just written, so a sweep leaves it alone
   * for its grace window. A caller about to record a row naming a blob it did not put calls this,
   * not `has`.
   */
  keep(sha256: string): Promise<boolean>;
  /** Every stored blob, in no particular order. */
  list(): AsyncIterable<ListedBlob>;
  /** The sweep's delete: removes the blob unless it was written or kept at or after `before`; true when removed. */
  deleteIfIdleSince(sha256: string, before: Date): Promise<boolean>;
  /** What writers left behind that nothing has touched since `before`. */
  listLeftovers(before: Date): AsyncIterable<Leftover>;
  removeLeftover(leftover: Leftover): Promise<void>;
  /**
   * Present when the store can hand out links: a URL that lets whoever holds it download the
   * blob (ranges too) straight from the store, until it expires.
   */
  presignedUrl?(sha256: string, options: PresignOptions): Promise<string>;
  /**
   * A file on this machine holding the blob, to be read in place (never written); null when
   * absent. Only stores that keep blobs on local disk have it.
   */
  localPath?(sha256: string): Promise<string | null>;
}

/** Checks a caller-supplied digest before it is used in any path or key. */
export function parseSha256(value: string, what = "blob id"): Sha256 {
  const parsed = sha256Schema.safeParse(value);
  if (!parsed.success) {
    const shown = typeof value === "string" ? JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value) : String(value);
    throw new AppError("BAD_REQUEST", `The ${what} ${shown} is not a sha256 digest: it must be 64 lowercase hexadecimal characters`);
  }
  return parsed.data;
}

/** Resolves an optional range against a blob's size: inclusive offsets, end clamped to the last byte. */
export function resolveRange(range: ByteRange | undefined, bytes: number): { start: number; end: number } | null {
  const parsed = byteRangeSchema.safeParse(range ?? {});
  if (!parsed.success) throw new AppError("BAD_REQUEST", `The byte range ${JSON.stringify(range)} is not valid: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  const start = parsed.data.start ?? 0;
  if (bytes === 0 && start === 0) return null;
  if (start >= bytes) throw new AppError("BAD_REQUEST", `The byte range starts at ${start}, past the end of the blob (${bytes} bytes)`);
  return { start, end: Math.min(parsed.data.end ?? bytes - 1, bytes - 1) };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number(value.toFixed(1))} ${units[unit]}`;
}
