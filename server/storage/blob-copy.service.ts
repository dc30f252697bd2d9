import crypto from "node:crypto";
import { formatBytes, type BlobStore, type ListedBlob } from "./blob-store";

// Copies every blob of one store into another (the folder store to a bucket, or back), for an
// instance that moves. Resumable: a blob the target already holds at the right size is skipped
// (names are digests and both stores only ever name whole, checked content, so the size is the
// check; `verify` reads the target's bytes back and hashes them as well); a blob the target holds
// wrongly is removed and copied again. Every copy is checked against its name on the way in, and
// into a bucket a large blob cut off by a restart goes on from its last whole part.

export interface CopyProgress {
  done: number;
  total: number;
  bytesDone: number;
  bytesTotal: number;
  sha256: string;
  bytes: number;
  outcome: "copied" | "present" | "replaced";
}

export interface CopyReport {
  total: number;
  copied: number;
  present: number;
  replaced: number;
  bytesCopied: number;
}

export async function copyBlobs({
  from,
  to,
  verify = false,
  concurrency = 4,
  onProgress,
  signal,
}: {
  from: BlobStore;
  to: BlobStore;
  verify?: boolean;
  concurrency?: number;
  onProgress?: (p: CopyProgress) => void;
  signal?: AbortSignal;
}): Promise<CopyReport> {
  const all: ListedBlob[] = [];
  for await (const b of from.list()) all.push(b);
  all.sort((a, b) => a.sha256.localeCompare(b.sha256));
  const report: CopyReport = { total: all.length, copied: 0, present: 0, replaced: 0, bytesCopied: 0 };
  const bytesTotal = all.reduce((n, b) => n + b.bytes, 0);
  let done = 0;
  let bytesDone = 0;

  async function copyOne(b: ListedBlob): Promise<CopyProgress["outcome"]> {
    const there = await to.stat(b.sha256);
    let isWrong = there !== null && there.bytes !== b.bytes;
    if (there && !isWrong && verify) isWrong = !(await hasDigest(to, b.sha256));
    // Already there: rows name it, so the target's sweep keeps it (no refresh, which on S3 is a copy).
    if (there && !isWrong) return "present";
    if (isWrong) await to.delete(b.sha256);
    await to.put(await from.get(b.sha256), { expectedSha256: b.sha256, maxBytes: b.bytes, signal });
    return isWrong ? "replaced" : "copied";
  }

  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, all.length)) }, async () => {
    while (next < all.length) {
      signal?.throwIfAborted();
      const b = all[next++];
      const outcome = await copyOne(b);
      report[outcome]++;
      if (outcome !== "present") report.bytesCopied += b.bytes;
      done++;
      bytesDone += b.bytes;
      onProgress?.({ done, total: all.length, bytesDone, bytesTotal, sha256: b.sha256, bytes: b.bytes, outcome });
    }
  });
  await Promise.all(workers);
  return report;
}

async function hasDigest(store: BlobStore, sha256: string): Promise<boolean> {
  const hash = crypto.createHash("sha256");
  for await (const chunk of await store.get(sha256)) hash.update(chunk as Buffer);
  return hash.digest("hex") === sha256;
}

export function describeProgress(p: CopyProgress): string {
  const what = p.outcome === "present" ? "already there" : p.outcome === "replaced" ? "replaced a damaged copy" : "copied";
  return `[${p.done}/${p.total}] ${p.sha256} ${formatBytes(p.bytes)} ${what} — ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}`;
}

export function describeCopy(r: CopyReport, target: string): string {
  return `${r.total} blob(s): ${r.copied} copied and ${r.replaced} replaced (${formatBytes(r.bytesCopied)}) to ${target}, ${r.present} already there`;
}
