import { Readable } from "node:stream";
import { DataStore, ERRORS, Upload } from "@tus/server";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import { Prisma } from "../generated/prisma/client";
import type { BlobStore } from "../storage/blob-store";
import { MissingPieceError, putPiece, readPiecesInOrder, removePieces, uploadPieceSchema } from "../storage/upload-pieces";
import { BLOCK, segmentAt, type ArchiveLayout, type Segment } from "./archive-layout";
import { uploadMetadataSchema, type EpisodeManifest } from "./edge.schemas";
import { offsetCheckpoints } from "./offset-checkpoints";
import { damagedFile, headEndOf, nextPiece, isRefusal, parseArchiveHead, readSums, refusalFrom, tusRefusal } from "./episode-upload-store";

// The tus data store for agents' episode uploads when raw episodes go through a bucket (S3): the
// same archive, unpacked and checked as its bytes arrive as in episode-upload-store.ts, but
// nothing is kept on this machine's disk. The upload is a row (EdgeUpload: size, metadata, bytes
// recorded, the archive's head and sums as received); every file that arrives whole is put into
// the blob store and named on a row of its own (EdgeUploadFile); a file longer than PIECE_BYTES,
// or one a lost connection cut, arrives as pieces (blobs named on the upload's row) that are
// joined into the file's blob when its last byte is in, and removed once the row no longer names
// them (upload-pieces.ts). So each request may land on any web
// process of any machine and go on where the last one stopped. The offset recorded never counts
// a byte that is not in the store: it is saved every CHECKPOINT_BYTES while a request goes on,
// and when it ends (what arrived of a file is then put as a piece, also when the connection
// broke); what a process killed mid-request had not yet saved is sent again.
// When the sums are in, every file's blob (its name is its sha256) is checked against its line.
// After the last byte the upload is committed; registering the episode (episodes.service.ts)
// hands its files to the episode (`Episode.rawFiles`) and forgets them here. The row stays until
// it expires, so an agent that missed the answer asks again and hears the upload is done.

/** The most of one file held in memory before it is put as a piece. */
const PIECE_BYTES = 8 * 1024 * 1024;
/** How much may arrive between two saves of the offset: what a killed portal process receives again. */
const CHECKPOINT_BYTES = 1024 * 1024;
/** Puts on their way at once, and the bytes they hold, while the next bytes are read from the network. */
const IN_FLIGHT_PUTS = 8;
const IN_FLIGHT_BYTES = 32 * 1024 * 1024;

const piecesSchema = z.array(uploadPieceSchema({ fileIndex: z.number().int().nonnegative(), start: z.number().int().nonnegative() }));
type Piece = z.infer<typeof piecesSchema>[number];
type ArrivedFile = { fileIndex: number; path: string; sha256: string; bytes: number };

/** A failure of the blob store while a request went on (not the archive's fault): the upload resumes. */
class StoreFailure extends Error {}

export class BucketEpisodeUploadStore extends DataStore {
  constructor(private readonly opts: { db: Db; blobs: BlobStore; maxBytes: number; expireAfterMs: number }) {
    super();
    this.extensions = ["creation", "creation-with-upload", "termination", "expiration"];
  }

  private async readRow(id: string) {
    const row = await this.opts.db.edgeUpload.findUnique({ where: { id } });
    if (!row) throw ERRORS.FILE_NOT_FOUND;
    return row;
  }

  async create(upload: Upload): Promise<Upload> {
    const meta = uploadMetadataSchema.safeParse(upload.metadata ?? {});
    const orgId = upload.metadata?.orgId;
    if (!meta.success || !orgId || upload.size === undefined) throw tusRefusal(400, "The upload's metadata is not valid; upload it with gantry-agent");
    await this.opts.db.edgeUpload.create({
      data: { id: upload.id, orgId, repoId: meta.data.repoId, episodeIndex: meta.data.episodeIndex, size: BigInt(upload.size), metadata: upload.metadata as Prisma.InputJsonValue, head: new Uint8Array(), sums: new Uint8Array() },
    });
    return upload;
  }

  async getUpload(id: string): Promise<Upload> {
    const row = await this.readRow(id);
    return new Upload({ id, size: Number(row.size), offset: Number(row.offset), metadata: row.metadata as Record<string, string | null>, creation_date: row.createdAt.toISOString() });
  }

  async declareUploadLength(): Promise<void> {
    throw tusRefusal(400, "Send the archive's length with Upload-Length; deferred lengths are not accepted");
  }

  getExpiration(): number {
    return this.opts.expireAfterMs;
  }

  /** Forgets the upload and removes its pieces; the files it had received are then named by nothing and go with the blob sweep. */
  async remove(id: string): Promise<void> {
    if (!(await this.removeRow(id))) throw ERRORS.FILE_NOT_FOUND;
  }

  /**
   * Deletes the upload's row (when it matches `where` too), then the pieces it named as it was
   * deleted (one statement: a save racing it cannot add pieces unseen); false when there was no such row.
   */
  private async removeRow(id: string, where: Prisma.EdgeUploadWhereInput = {}): Promise<boolean> {
    let row: { pieces: Prisma.JsonValue };
    try {
      row = await this.opts.db.edgeUpload.delete({ where: { ...where, id }, select: { pieces: true } });
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") return false;
      throw error;
    }
    const pieces = piecesSchema.safeParse(row.pieces);
    if (pieces.success) await removePieces(this.opts.blobs, pieces.data);
    return true;
  }

  /**
   * Removes uploads nobody has written to for `expireAfterMs` (since the last bytes were saved, not
   * since the upload began); a complete one not yet committed is left to the request finishing it.
   * `hold` runs each removal holding the upload's lock, or answers null when a request holds it
   * (the upload is then left for the next sweep).
   */
  async deleteExpired({ hold }: { hold?: (id: string, work: () => Promise<boolean>) => Promise<boolean | null> } = {}): Promise<number> {
    const before = new Date(Date.now() - this.opts.expireAfterMs);
    const idle = await this.opts.db.edgeUpload.findMany({ where: { updatedAt: { lt: before } }, select: { id: true, committed: true, offset: true, size: true } });
    let removed = 0;
    for (const { id } of idle.filter((u) => u.committed || u.offset !== u.size)) {
      const removeIfExpired = () => this.removeRow(id, { updatedAt: { lt: before } });
      if ((await (hold ? hold(id, removeIfExpired) : removeIfExpired()).catch(() => false)) === true) removed++;
    }
    return removed;
  }

  private parseHead(row: { metadata: unknown; size: bigint }, head: Buffer): { manifest: EpisodeManifest; layout: ArchiveLayout } {
    return parseArchiveHead({ metadata: row.metadata as Record<string, string | null>, size: Number(row.size), head, maxBytes: this.opts.maxBytes });
  }

  /** Names files that arrived whole on the upload (again: a file sent twice keeps its last blob). */
  private async recordFiles(id: string, files: ArrivedFile[]): Promise<void> {
    if (!files.length) return;
    await this.opts.db.$executeRaw`INSERT INTO "EdgeUploadFile" ("uploadId", "fileIndex", "path", "sha256", "bytes")
      SELECT ${id}, f.i, f.p, f.s, f.b FROM unnest(${files.map((f) => f.fileIndex)}::int[], ${files.map((f) => f.path)}::text[], ${files.map((f) => f.sha256)}::text[], ${files.map((f) => BigInt(f.bytes))}::bigint[]) AS f(i, p, s, b)
      ON CONFLICT ("uploadId", "fileIndex") DO UPDATE SET "path" = EXCLUDED."path", "sha256" = EXCLUDED."sha256", "bytes" = EXCLUDED."bytes"`;
  }

  async write(readable: Readable, id: string, offset: number): Promise<number> {
    const row = await this.readRow(id);
    // Finished already: tus lets only an empty request through, which finishes it again (harmless).
    if (row.committed) return offset;
    const { blobs } = this.opts;
    let pos = offset;
    let head = Buffer.from(row.head).subarray(0, pos);
    let sums = Buffer.from(row.sums);
    let unpacking: { manifest: EpisodeManifest; layout: ArchiveLayout } | null = null;
    let pieces: Piece[] = [];
    // Pieces the row will no longer name (of files joined since the last save, or dropped as this
    // request resumed): removed once a save has taken them off the row.
    let joined: Piece[] = [];
    let newFiles: ArrivedFile[] = [];

    // Puts on their way, in the order they began; the offset saved is never past the first not done.
    const flights: { at: number; bytes: number; isDone: boolean; done: Promise<void> }[] = [];
    let flightBytes = 0;
    let storeError: unknown = null;
    // The file being received: where its bytes not yet put begin, and those bytes.
    let current: { fileIndex: number; segment: Segment; bufferAt: number; buffer: Buffer[]; bufferBytes: number } | null = null;
    // While a file's pieces are joined, the offset stays before its last piece.
    let holdAt = Infinity;
    const offsetNow = () => Math.min(pos, holdAt, current ? current.bufferAt : Infinity, flights.find((f) => !f.isDone)?.at ?? Infinity);

    let saved = offset;
    // What the row holds of the head (its length: it only grows) and of the sums (the buffer saved).
    let savedHead = row.head.length;
    let savedSums = sums;
    /**
     * Records the offset `at`, with what the row must name for it: taken all at once, when the save
     * is asked for (the request goes on while it is written), so the row never holds an offset
     * with the head, sums, pieces or files of another moment.
     */
    const save = async (at: number) => {
      const files = newFiles;
      newFiles = [];
      const snapshot = { head, sums, pieces: pieces.slice() };
      const retired = joined;
      joined = [];
      try {
        await this.recordFiles(id, files);
      } catch (error) {
        newFiles.unshift(...files);
        joined.unshift(...retired);
        throw error;
      }
      // The head (up to 16 MiB of manifest) and the sums are written again only when they changed.
      const changed = { ...(snapshot.head.length !== savedHead ? { head: snapshot.head } : {}), ...(snapshot.sums !== savedSums ? { sums: snapshot.sums } : {}) };
      try {
        await this.opts.db.edgeUpload.update({ where: { id }, data: { offset: BigInt(at), ...changed, pieces: snapshot.pieces as Prisma.InputJsonValue } });
      } catch (error) {
        joined.unshift(...retired);
        throw error;
      }
      saved = at;
      savedHead = snapshot.head.length;
      savedSums = snapshot.sums;
      await removePieces(blobs, retired);
    };
    const { checkpoint, settled, end: endCheckpoints } = offsetCheckpoints({ every: CHECKPOINT_BYTES, saved: () => saved, offsetNow, save });
    const launch = (at: number, bytes: number, work: () => Promise<void>) => {
      const flight = { at, bytes, isDone: false, done: Promise.resolve() };
      flights.push(flight);
      flightBytes += bytes;
      flight.done = work().then(
        () => {
          flight.isDone = true;
          flightBytes -= bytes;
          while (flights[0]?.isDone) flights.shift();
          checkpoint();
        },
        (error: unknown) => {
          storeError ??= error;
        },
      );
    };
    const busy = () => flights.reduce((n, f) => n + (f.isDone ? 0 : 1), 0);
    /** Waits until at most `count` puts holding at most `bytes` are on their way; throws when one failed. */
    const drainTo = async (count: number, bytes: number) => {
      for (const flight of [...flights]) {
        if (storeError || (busy() <= count && flightBytes <= bytes)) break;
        await flight.done;
      }
      if (storeError) throw new StoreFailure(`The blob store did not take the upload's bytes: ${(storeError as Error).message}`, { cause: storeError });
    };
    const put = async (bytes: Buffer) => blobs.put(Readable.from([bytes]));

    /** Puts what of a file is held as a piece of it. */
    const flushPiece = (file: NonNullable<typeof current>) => {
      if (!file.bufferBytes) return;
      const bytes = file.buffer.length === 1 ? file.buffer[0] : Buffer.concat(file.buffer);
      const at = file.bufferAt;
      const start = at - file.segment.start;
      file.buffer = [];
      file.bufferBytes = 0;
      file.bufferAt = at + bytes.length;
      launch(at, bytes.length, async () => {
        const stored = await putPiece(blobs, `edge-upload ${id} ${file.fileIndex} ${start}`, Readable.from([bytes]));
        pieces.push({ fileIndex: file.fileIndex, start, ...stored });
      });
    };

    /** The file's last byte is held: it becomes one blob, put at once or joined from its pieces. */
    const finishFile = async () => {
      const file = current!;
      const { path } = unpacking!.manifest.files[file.fileIndex];
      const length = file.segment.length;
      current = null;
      if (file.bufferAt === file.segment.start) {
        // All of it came in this request, in memory.
        const bytes = file.buffer.length === 1 ? file.buffer[0] : Buffer.concat(file.buffer);
        launch(file.bufferAt, length, async () => {
          const stored = await put(bytes);
          newFiles.push({ fileIndex: file.fileIndex, path, sha256: stored.sha256, bytes: stored.bytes });
        });
        return;
      }
      holdAt = file.bufferAt;
      flushPiece(file);
      await drainTo(0, 0);
      const own = pieces.filter((p) => p.fileIndex === file.fileIndex).sort((a, b) => a.start - b.start);
      let end = 0;
      for (const p of own) {
        if (p.start !== end) throw new StoreFailure(`The pieces of ${path} do not join up at byte ${end}`);
        end += p.bytes;
      }
      if (end !== length) throw new StoreFailure(`The pieces of ${path} hold ${end} bytes, not ${length}`);
      const stored = await blobs.put(readPiecesInOrder(blobs, own)).catch((error: unknown) => {
        if (error instanceof MissingPieceError) {
          // Removed by another request on this upload (after its lock was lost), or lost by the
          // store: the row forgets the file's pieces and the file is received again from its start.
          pieces = pieces.filter((p) => p.fileIndex !== file.fileIndex);
          joined.push(...own);
          holdAt = file.segment.start;
        }
        throw new StoreFailure(`The pieces of ${path} could not be joined: ${(error as Error).message}`, { cause: error });
      });
      if (stored.bytes !== length) throw new StoreFailure(`The pieces of ${path} joined to ${stored.bytes} bytes, not ${length}`);
      newFiles.push({ fileIndex: file.fileIndex, path, sha256: stored.sha256, bytes: stored.bytes });
      pieces = pieces.filter((p) => p.fileIndex !== file.fileIndex);
      joined.push(...own);
      holdAt = Infinity;
    };

    /** Every file's blob against its line in the sums; the first that differs fails the upload. */
    const checkSums = async () => {
      const { manifest } = unpacking!;
      const expected = readSums(manifest, sums);
      await drainTo(0, 0);
      await settled();
      for (const [fileIndex, file] of manifest.files.entries()) {
        // An empty file has no bytes in the archive, so nothing put it: it is put here.
        if (file.size === 0) newFiles.push({ fileIndex, path: file.path, ...(await put(Buffer.alloc(0))) });
      }
      const files = newFiles;
      newFiles = [];
      await this.recordFiles(id, files).catch((error: unknown) => {
        newFiles.unshift(...files);
        throw error;
      });
      const arrived = new Map((await this.opts.db.edgeUploadFile.findMany({ where: { uploadId: id }, select: { fileIndex: true, sha256: true } })).map((f) => [f.fileIndex, f.sha256]));
      for (const [i, file] of manifest.files.entries()) if (arrived.get(i) !== expected[i]) throw damagedFile(file);
    };

    /** The row holds less than its offset counts: it goes back to what it holds, and the client asks again. */
    const holdsLess = async (at: number) => {
      await this.opts.db.edgeUpload.update({ where: { id }, data: { offset: BigInt(at), pieces: pieces as Prisma.InputJsonValue } });
      await removePieces(blobs, joined);
      joined = [];
      return tusRefusal(409, `The portal holds ${at} bytes of this upload, fewer than the ${pos} it had counted; ask again where it stands and resume from there`);
    };
    // Whether the request has begun to receive (before, a failure saves nothing).
    let isStarted = false;
    try {
      // Where the bytes recorded end, the upload goes on: pieces past it (or of another file) are
      // dropped, and removed once the row no longer names them.
      const listed = piecesSchema.safeParse(row.pieces);
      const rowPieces = listed.success ? listed.data : [];
      joined = rowPieces;
      const headEnd = headEndOf(head);
      if (headEnd !== null && head.length >= headEnd) unpacking = this.parseHead(row, head);
      else if (head.length < pos) throw await holdsLess(head.length);
      if (unpacking) {
        const segment = unpacking.layout.segments[segmentAt(unpacking.layout, pos)];
        if (segment?.kind === "file" && pos > segment.start) {
          if (!listed.success) throw listed.error;
          const own = rowPieces.filter((p) => p.fileIndex === segment.fileIndex).sort((a, b) => a.start - b.start);
          let end = 0;
          for (const p of own) {
            if (p.start !== end || end >= pos - segment.start) break;
            pieces.push(p);
            end += p.bytes;
          }
          joined = rowPieces.filter((p) => !pieces.includes(p));
          if (end !== pos - segment.start) throw await holdsLess(segment.start + end);
          current = { fileIndex: segment.fileIndex, segment, bufferAt: pos, buffer: [], bufferBytes: 0 };
        }
        if (segment?.kind === "checksums") {
          if (sums.length < pos - segment.start) throw await holdsLess(segment.start + sums.length);
          sums = sums.subarray(0, pos - segment.start);
        }
      }
      isStarted = true;
      for await (const chunk of readable) {
        let rest = chunk as Buffer;
        while (rest.length) {
          if (!unpacking) {
            // The manifest's header tells how long the head is; then the manifest itself.
            const want = (headEndOf(head) ?? BLOCK) - pos;
            if (want <= 0) throw new Error(`The upload's head holds ${head.length} bytes at offset ${pos}`);
            const take = rest.subarray(0, want);
            head = Buffer.concat([head, take]);
            pos += take.length;
            rest = rest.subarray(take.length);
            if (head.length === headEndOf(head)) unpacking = this.parseHead(row, head);
            checkpoint();
            continue;
          }
          const { segment, within, piece } = nextPiece(unpacking.layout, pos, rest);
          // Past the piece before anything is awaited: what is still on its way holds the offset back.
          pos += piece.length;
          rest = rest.subarray(piece.length);
          if (segment.kind === "checksums") {
            sums = Buffer.concat([sums.subarray(0, within), piece]);
            if (within + piece.length === segment.length) {
              // Until every file is checked against them, no offset past the sums' last piece counts.
              holdAt = segment.start + within;
              await checkSums();
              holdAt = Infinity;
            }
          } else if (segment.kind === "file") {
            current ??= { fileIndex: segment.fileIndex, segment, bufferAt: pos - piece.length, buffer: [], bufferBytes: 0 };
            current.buffer.push(piece);
            current.bufferBytes += piece.length;
            if (within + piece.length === segment.length) await finishFile();
            else if (current.bufferBytes >= PIECE_BYTES) flushPiece(current);
            if (busy() > IN_FLIGHT_PUTS || flightBytes > IN_FLIGHT_BYTES) await drainTo(IN_FLIGHT_PUTS / 2, IN_FLIGHT_BYTES / 2);
          }
          checkpoint();
        }
      }
      // What arrived of the file the request ended in is kept as a piece of it.
      if (current) flushPiece(current);
      await drainTo(0, 0);
      await endCheckpoints();
      await save(offsetNow());
      return saved;
    } catch (error) {
      // The connection broke: what arrived of the file it broke in is kept too.
      if (current && !(error instanceof AppError) && !isRefusal(error) && !storeError) flushPiece(current);
      await Promise.allSettled(flights.map((f) => f.done));
      await endCheckpoints();
      if (isRefusal(error)) throw error;
      if (error instanceof AppError) {
        // The archive itself is bad: resuming cannot mend it. The client starts a new upload.
        await this.remove(id).catch(() => {});
        throw refusalFrom(error);
      }
      // The connection broke, or the store failed: keep what is recorded, and say how far it got.
      if (error instanceof StoreFailure || !isStarted) console.error(`Episode upload ${id}: ${(error as Error).message}`);
      if (isStarted) await save(offsetNow()).catch(() => {});
      throw ERRORS.FILE_WRITE_ERROR;
    }
  }

  /**
   * After the last byte (every file checked against its sum): marks the upload committed. Its
   * files wait on it until the episode is registered. Committing again is harmless.
   */
  async commit(id: string): Promise<{ files: number }> {
    const row = await this.readRow(id);
    const files = await this.opts.db.edgeUploadFile.count({ where: { uploadId: id } });
    if (row.committed) return { files };
    if (row.offset !== row.size) throw new AppError("CONFLICT", "The upload is not complete yet");
    await this.opts.db.edgeUpload.update({ where: { id }, data: { committed: true, head: new Uint8Array(), sums: new Uint8Array(), pieces: [] } });
    return { files };
  }
}

/**
 * The files of an agent's episode upload that arrived whole and was not yet registered (the
 * latest, if several): each path in the repo's raw layout → its blob. Null when there is none.
 */
export async function arrivedEpisodeUpload(db: Db, { orgId, repoId, episodeIndex }: { orgId: string; repoId: string; episodeIndex: number }): Promise<{ uploadId: string; files: Record<string, { sha256: string; bytes: number }> } | null> {
  const upload = await db.edgeUpload.findFirst({
    where: { orgId, repoId, episodeIndex, committed: true, registered: false },
    orderBy: { updatedAt: "desc" },
    select: { id: true, files: { select: { path: true, sha256: true, bytes: true } } },
  });
  if (!upload) return null;
  return { uploadId: upload.id, files: Object.fromEntries(upload.files.map((f) => [f.path, { sha256: f.sha256, bytes: Number(f.bytes) }])) };
}

/** The episode was registered with the upload's files (the episode names them now): the upload forgets them. */
export async function releaseEpisodeUpload(db: Db, uploadId: string): Promise<void> {
  await db.$transaction([db.edgeUploadFile.deleteMany({ where: { uploadId } }), db.edgeUpload.updateMany({ where: { id: uploadId }, data: { registered: true } })]);
}
