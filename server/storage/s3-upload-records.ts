import type { Db } from "../db";

// The Postgres record of multipart uploads whose content's digest was stated: the upload id, the
// part size and each part's ETag and sha256, written as parts complete. A put cut off by a
// process restart (a kill, a crash, a deploy) is taken over by the next put of the same content,
// which skips the parts already there. A record is held by one process at a time through a
// lease it renews while it writes; a holder that died lets its lease run out.

export interface RecordedPart {
  etag: string;
  sha256: string;
  bytes: number;
}

export interface UploadRecord {
  id: string;
  key: string;
  uploadId: string;
  partBytes: number;
  parts: Map<number, RecordedPart>;
}

export interface UploadRecords {
  /**
   * Takes over the record of an upload of this content whose holder let go or died: the record,
   * how long another process still holds it, or null when there is none.
   */
  claim(sha256: string): Promise<UploadRecord | { heldForMs: number } | null>;
  /** Records a new upload held by this process; null when another process recorded one first. */
  start(upload: { sha256: string; key: string; uploadId: string; partBytes: number }): Promise<string | null>;
  recordPart(id: string, number: number, part: RecordedPart): Promise<void>;
  /** Renews the lease while a part is on its way. */
  renew(id: string): Promise<void>;
  /** Lets go of it (the upload stays, for the next put of the same content). */
  release(id: string): Promise<void>;
  drop(id: string): Promise<void>;
  /** Uploads of this store nobody holds, last written before `before`. */
  listIdle(before: Date): Promise<{ id: string; key: string; uploadId: string; updatedAt: Date; bytes: number }[]>;
  /** Every upload id this store has a record of, held or not. */
  uploadIds(): Promise<Set<string>>;
}

export function createUploadRecords(db: Db, { store, leaseMs }: { store: string; leaseMs: number }): UploadRecords {
  return {
    async claim(sha256) {
      const [taken] = await db.$queryRaw<{ id: string; key: string; uploadId: string; partBytes: number }[]>`
        UPDATE "BlobUpload" SET "heldUntil" = now() + ${leaseMs} * interval '1 millisecond', "updatedAt" = now()
        WHERE "store" = ${store} AND "sha256" = ${sha256} AND "heldUntil" < now()
        RETURNING "id", "key", "uploadId", "partBytes"`;
      if (!taken) {
        const [held] = await db.$queryRaw<{ ms: number }[]>`SELECT (EXTRACT(EPOCH FROM ("heldUntil" - now())) * 1000)::float8 AS "ms" FROM "BlobUpload" WHERE "store" = ${store} AND "sha256" = ${sha256}`;
        return held ? { heldForMs: Math.max(0, held.ms) } : null;
      }
      const parts = await db.blobUploadPart.findMany({ where: { uploadId: taken.id }, orderBy: { number: "asc" } });
      return { ...taken, parts: new Map(parts.map((p) => [p.number, { etag: p.etag, sha256: p.sha256, bytes: p.bytes }])) };
    },
    async start({ sha256, key, uploadId, partBytes }) {
      const [row] = await db.$queryRaw<{ id: string }[]>`
        INSERT INTO "BlobUpload" ("id", "store", "sha256", "key", "uploadId", "partBytes", "heldUntil", "updatedAt")
        VALUES (gen_random_uuid(), ${store}, ${sha256}, ${key}, ${uploadId}, ${partBytes}, now() + ${leaseMs} * interval '1 millisecond', now())
        ON CONFLICT ("store", "sha256") DO NOTHING RETURNING "id"`;
      return row?.id ?? null;
    },
    async recordPart(id, number, part) {
      await db.$transaction([
        db.blobUploadPart.upsert({ where: { uploadId_number: { uploadId: id, number } }, create: { uploadId: id, number, ...part }, update: part }),
        db.$executeRaw`UPDATE "BlobUpload" SET "heldUntil" = now() + ${leaseMs} * interval '1 millisecond', "updatedAt" = now() WHERE "id" = ${id}::uuid`,
      ]);
    },
    async renew(id) {
      await db.$executeRaw`UPDATE "BlobUpload" SET "heldUntil" = now() + ${leaseMs} * interval '1 millisecond' WHERE "id" = ${id}::uuid`;
    },
    async release(id) {
      await db.$executeRaw`UPDATE "BlobUpload" SET "heldUntil" = now() - interval '1 millisecond' WHERE "id" = ${id}::uuid`;
    },
    async drop(id) {
      await db.blobUpload.deleteMany({ where: { id } });
    },
    async listIdle(before) {
      const rows = await db.$queryRaw<{ id: string; key: string; uploadId: string; updatedAt: Date; bytes: bigint | null }[]>`
        SELECT u."id", u."key", u."uploadId", u."updatedAt", (SELECT sum(p."bytes") FROM "BlobUploadPart" p WHERE p."uploadId" = u."id") AS "bytes"
        FROM "BlobUpload" u WHERE u."store" = ${store} AND u."heldUntil" < now() AND u."updatedAt" < ${before}`;
      return rows.map((r) => ({ ...r, bytes: Number(r.bytes ?? 0) }));
    },
    async uploadIds() {
      return new Set((await db.blobUpload.findMany({ where: { store }, select: { uploadId: true } })).map((r) => r.uploadId));
    },
  };
}
