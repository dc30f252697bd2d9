import { z } from "zod";
import type { BlobSource, BlobStore, PutOptions } from "./blob-store";
import { sha256Schema } from "./blob-store";

// The pieces of an upload in progress (a model sent in ranges, an agent's file cut by a lost
// connection), kept in the blob store until they are joined into the file's own blob.
//
// Blobs are content-addressed, so a blob holding a piece's bytes alone could be the very blob
// another writer has just put and not yet named on a row: removing it when the upload ends
// would harm that writer, and so pieces used to wait for the sweep's grace window (hours) —
// the upload's bytes stored twice meanwhile. A piece is therefore stored behind a one-line
// header naming its upload and place ("gantry upload piece: <owner>\n"): no other writer can
// produce those bytes, so the upload removes its pieces the moment it has joined them or is
// cancelled. Pieces recorded without a header (before headers were written) are left to the
// sweep, as before.

export const uploadPieceFields = {
  sha256: sha256Schema,
  /** The piece's own bytes, after its header. */
  bytes: z.number().int().positive(),
  /** Length of the header before them; absent for a piece stored without one. */
  header: z.number().int().positive().optional(),
};

export interface StoredPiece {
  sha256: string;
  bytes: number;
  header?: number;
}

/**
 * Stores a piece behind a header naming `owner` (the upload and the piece's place in it, e.g.
 * `model-upload <id> <start>`); `maxBytes` counts the piece's own bytes.
 */
export async function putPiece(blobs: BlobStore, owner: string, source: BlobSource, { maxBytes, signal }: Pick<PutOptions, "maxBytes" | "signal"> = {}): Promise<StoredPiece> {
  const header = Buffer.from(`gantry upload piece: ${owner}\n`);
  async function* withHeader() {
    yield header;
    yield* source as AsyncIterable<Uint8Array>;
  }
  const stored = await blobs.put(withHeader(), { signal, maxBytes: maxBytes === undefined ? undefined : maxBytes + header.length });
  return { sha256: stored.sha256, bytes: stored.bytes - header.length, header: header.length };
}

/** The pieces' own bytes, one after another, as one stream (each header skipped). */
export async function* readPiecesInOrder(blobs: BlobStore, pieces: readonly StoredPiece[]): AsyncIterable<Uint8Array> {
  for (const piece of pieces) yield* await blobs.get(piece.sha256, piece.header ? { start: piece.header } : undefined);
}

/**
 * Removes pieces no upload needs any more (joined, cancelled, cut short). Only pieces stored
 * behind a header: one without could be another writer's blob. A removal that fails is left to
 * the sweep (nothing names the piece any more); it is not the upload's failure.
 */
export async function removePieces(blobs: BlobStore, pieces: readonly StoredPiece[]): Promise<void> {
  await Promise.all(pieces.filter((p) => p.header).map((p) => blobs.delete(p.sha256).catch(() => {})));
}
