import type { Db } from "../db";
import { formatBytes, type BlobStore, type Leftover } from "./blob-store";
import { namedBlobs } from "./blob-refs";

// The sweep of a blob store (folder or bucket): blobs no row names (blob-refs.ts) — a deleted
// model's files, a finished job's inputs — and what crashed writers left (temporary files and
// objects, unfinished multipart uploads). A blob written or kept within the grace window is
// never taken, whatever the rows say: a writer stores a blob first and inserts the row naming it
// after, and one that finds its content already stored marks it kept (BlobStore.keep). The
// store's own delete checks the age again at the moment it removes, so a writer that kept the
// blob while the sweep was deciding wins.

export interface SweepOptions {
  blobs: BlobStore;
  /** Blobs written or kept more recently than this are left alone. */
  graceMs: number;
  /** Temporary files and unfinished uploads untouched for this long are removed. */
  leftoverAgeMs: number;
  /** Lists what would go, removing nothing. */
  dryRun?: boolean;
  /** Told each thing as it is removed (or would be, in a dry run). */
  onItem?: (item: SweptItem) => void;
  signal?: AbortSignal;
}

export type SweptItem = { kind: "blob"; sha256: string; bytes: number; modifiedAt: Date } | { kind: "leftover"; name: string; what: Leftover["what"]; bytes: number; modifiedAt: Date };

export interface SweepReport {
  dryRun: boolean;
  blobs: { count: number; bytes: number };
  leftovers: { count: number; bytes: number };
  /** Blobs looked at, and how many of them rows name. */
  scanned: number;
  named: number;
}

const BATCH = 500;

export async function sweepBlobs(db: Db, { blobs, graceMs, leftoverAgeMs, dryRun = false, onItem, signal }: SweepOptions): Promise<SweepReport> {
  const report: SweepReport = { dryRun, blobs: { count: 0, bytes: 0 }, leftovers: { count: 0, bytes: 0 }, scanned: 0, named: 0 };
  const before = new Date(Date.now() - graceMs);
  let batch: { sha256: string; bytes: number; modifiedAt: Date }[] = [];
  const settle = async () => {
    const named = await namedBlobs(db, batch.map((b) => b.sha256));
    report.named += named.size;
    for (const b of batch) {
      signal?.throwIfAborted();
      if (named.has(b.sha256)) continue;
      if (!dryRun && !(await blobs.deleteIfIdleSince(b.sha256, before))) continue;
      report.blobs.count++;
      report.blobs.bytes += b.bytes;
      onItem?.({ kind: "blob", ...b });
    }
    batch = [];
  };
  for await (const b of blobs.list()) {
    signal?.throwIfAborted();
    report.scanned++;
    if (b.modifiedAt >= before) continue;
    batch.push(b);
    if (batch.length >= BATCH) await settle();
  }
  await settle();

  for await (const l of blobs.listLeftovers(new Date(Date.now() - leftoverAgeMs))) {
    signal?.throwIfAborted();
    if (!dryRun) await blobs.removeLeftover(l);
    report.leftovers.count++;
    report.leftovers.bytes += l.bytes;
    onItem?.({ kind: "leftover", name: l.name, what: l.what, bytes: l.bytes, modifiedAt: l.modifiedAt });
  }
  return report;
}

/** One line for a person: what went (or would go), and how much. */
export function describeSweep(r: SweepReport): string {
  const verb = r.dryRun ? "would remove" : "removed";
  return `${r.dryRun ? "Dry run: " : ""}${verb} ${r.blobs.count} unreferenced blob(s) (${formatBytes(r.blobs.bytes)}) of ${r.scanned}, and ${r.leftovers.count} leftover(s) of crashed or stopped writers (${formatBytes(r.leftovers.bytes)})`;
}
