import { Readable } from "node:stream";
import type { Db, Tx } from "../db";
import type { BlobStore } from "../storage/blob-store";
import { namedBlobs } from "../storage/blob-refs";

// Frames, chunk manifests and snapshots are blobs named by their sha256, so two sessions (or
// two frames of a still scene) can share one. A reset or a delete lets go of its blobs by
// listing them in CaptureBlobRelease; a sweep removes each one that no capture row names any
// more. The sweep and a new row naming the same blob take the same advisory lock, and the
// writer checks the blob is still there inside it, so a blob is never removed under a row
// that was being added at the same moment.
//
// The same bytes may be another domain's blob too (a model file, an episode's video): the sweep
// removes a released blob only when no row of any domain names it (server/storage/blob-refs.ts)
// and it was not written or kept since it was released.

/** The first key of the two-key advisory locks on capture blob names. */
const LOCK_SPACE = 7_351_017;

/** Takes the advisory lock of each blob name until the transaction ends (sorted: no deadlock). */
export async function lockBlobNames(tx: Tx, shas: string[]): Promise<void> {
  for (const sha of [...new Set(shas)].sort()) await tx.$executeRaw`SELECT pg_advisory_xact_lock(${LOCK_SPACE}::int, hashtext(${sha}))`;
}

/** Puts the bytes back if a sweep removed the blob after they were first stored; call under lockBlobNames. */
export async function ensureBlob(blobs: BlobStore, sha256: string, bytes: Uint8Array): Promise<void> {
  if (await blobs.has(sha256)) return;
  await blobs.put(Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]), { expectedSha256: sha256 });
}

/** Lists every blob of a session (all of it, or only its snapshots) for the sweep, in the caller's transaction. */
export async function releaseSessionBlobs(tx: Tx, sessionId: string, what: "all" | "snapshots" = "all"): Promise<void> {
  if (what === "all") {
    await tx.$executeRaw`INSERT INTO "CaptureBlobRelease" ("sha256") SELECT DISTINCT "sha256" FROM "CaptureFrame" WHERE "sessionId" = ${sessionId}::uuid ON CONFLICT DO NOTHING`;
    await tx.$executeRaw`INSERT INTO "CaptureBlobRelease" ("sha256") SELECT DISTINCT "sha256" FROM "CaptureChunk" WHERE "sessionId" = ${sessionId}::uuid ON CONFLICT DO NOTHING`;
  }
  await tx.$executeRaw`INSERT INTO "CaptureBlobRelease" ("sha256")
    SELECT "sourceSha256" FROM "CaptureSnapshot" WHERE "sessionId" = ${sessionId}::uuid UNION SELECT "spzSha256" FROM "CaptureSnapshot" WHERE "sessionId" = ${sessionId}::uuid
    ON CONFLICT DO NOTHING`;
}

/** Lists some blobs for the sweep (a chunk manifest that lost a race, pruned snapshots). */
export async function releaseBlobs(tx: Tx, shas: string[]): Promise<void> {
  if (!shas.length) return;
  await tx.$executeRaw`INSERT INTO "CaptureBlobRelease" ("sha256") SELECT unnest(${[...new Set(shas)]}::text[]) ON CONFLICT DO NOTHING`;
}

/**
 * Runs `record` (the transaction that names freshly stored blobs); when it fails, the blobs are
 * listed for the sweep, so a refusal at that point (a session stopped meanwhile) leaves nothing.
 */
export async function recordingBlobs<T>(db: Db, shas: string[], record: () => Promise<T>): Promise<T> {
  try {
    return await record();
  } catch (error) {
    await releaseBlobs(db, shas).catch(() => {});
    throw error;
  }
}

/**
 * Removes released blobs that no capture row names, up to `limit` of them; the rest wait for
 * the next sweep (worker/crontab runs one a minute).
 */
export async function sweepReleasedBlobs(db: Db, { blobs, limit = 1000 }: { blobs: BlobStore; limit?: number }): Promise<{ removed: number; kept: number; left: number }> {
  const rows = await db.captureBlobRelease.findMany({ orderBy: { releasedAt: "asc" }, take: limit, select: { sha256: true, releasedAt: true } });
  let removed = 0;
  let kept = 0;
  for (const { sha256, releasedAt } of rows) {
    await db.$transaction(
      async (tx) => {
        await lockBlobNames(tx, [sha256]);
        if ((await namedBlobs(tx, [sha256])).size) kept++;
        else if (await blobs.deleteIfIdleSince(sha256, releasedAt)) removed++;
        else kept++;
        await tx.captureBlobRelease.deleteMany({ where: { sha256 } });
      },
      { timeout: 60_000 },
    );
  }
  return { removed, kept, left: rows.length === limit ? await db.captureBlobRelease.count() : 0 };
}
