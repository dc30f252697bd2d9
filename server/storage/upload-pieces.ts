import crypto from "node:crypto";
import { z } from "zod";
import { AppError, isAppError } from "../errors";
import type { BlobSource, BlobStore, PutOptions } from "./blob-store";
import { sha256Schema } from "./blob-store";

// The pieces of an upload in progress (a model sent in ranges, an agent's file cut by a lost
// connection), kept in the blob store until they are joined into the file's own blob.
//
// Blobs are content-addressed, so a blob holding a piece's bytes alone could be the very blob
// another writer has just put and not yet named on a row: removing it when the upload ends
// would harm that writer, and so pieces used to wait for the sweep's grace window (hours) —
// the upload's bytes stored twice meanwhile. A piece is therefore stored behind a one-line
// header naming its upload and place, with 128 random bits no sender can know
// ("gantry upload piece: <owner> <random>\n"): no other writer, careless or crafty, can produce
// those bytes, so the upload removes its pieces the moment it has joined them or is cancelled.
//
// On the row such a piece names its blob as `blob` (with the header's length), not `sha256`: a
// process of an earlier version, still running during a rolling restart, refuses the row as
// damaged instead of reading the header as the file's bytes. Pieces recorded as `sha256`
// (without a header, by earlier versions) are read as they are and left to the sweep.

const positive = z.number().int().positive();

/** A piece as its upload's row records it, with the upload's own fields (`start`, …). */
export function uploadPieceSchema<T extends z.ZodRawShape>(fields: T) {
  return z.union([
    z.object({ ...fields, blob: sha256Schema, header: positive, bytes: positive }),
    z.object({ ...fields, sha256: sha256Schema, bytes: positive }),
  ]);
}

/** A stored piece: `bytes` of its own, in `blob` after `header` bytes of header, or a whole `sha256` blob. */
export type StoredPiece = { bytes: number } & ({ blob: string; header: number } | { sha256: string });

/**
 * Stores a piece behind a header naming `owner` (the upload and the piece's place in it, e.g.
 * `model-upload <id> <start>`); `maxBytes` counts the piece's own bytes.
 */
export async function putPiece(blobs: BlobStore, owner: string, source: BlobSource, { maxBytes, signal }: Pick<PutOptions, "maxBytes" | "signal"> = {}): Promise<{ blob: string; header: number; bytes: number }> {
  const header = Buffer.from(`gantry upload piece: ${owner} ${crypto.randomBytes(16).toString("hex")}\n`);
  async function* withHeader() {
    yield header;
    yield* source as AsyncIterable<Uint8Array>;
  }
  const stored = await blobs.put(withHeader(), { signal, maxBytes: maxBytes === undefined ? undefined : maxBytes + header.length });
  return { blob: stored.sha256, header: header.length, bytes: stored.bytes - header.length };
}

/** A piece the store no longer holds (the upload was cancelled meanwhile, or the store lost it): the upload cannot go on from it. */
export class MissingPieceError extends AppError {
  constructor() {
    super("CONFLICT", "A piece of this upload is no longer in the blob store (the upload was cancelled meanwhile, or the store lost it); start the upload again");
  }
}

/** The pieces' own bytes, one after another, as one stream (each header skipped); MissingPieceError when one is gone. */
export async function* readPiecesInOrder(blobs: BlobStore, pieces: readonly StoredPiece[]): AsyncIterable<Uint8Array> {
  for (const piece of pieces) {
    const read = await ("blob" in piece ? blobs.get(piece.blob, { start: piece.header }) : blobs.get(piece.sha256)).catch((error: unknown) => {
      throw isAppError(error) && error.code === "NOT_FOUND" ? new MissingPieceError() : error;
    });
    yield* read;
  }
}

/**
 * Removes pieces no upload needs any more (joined, cancelled, cut short). Only pieces stored
 * behind a header: one without could be another writer's blob. A removal that fails is left to
 * the sweep (nothing names the piece any more); it is not the upload's failure.
 */
export async function removePieces(blobs: BlobStore, pieces: readonly StoredPiece[]): Promise<void> {
  await Promise.all(pieces.map((p) => ("blob" in p ? blobs.delete(p.blob).catch(() => {}) : null)));
}
