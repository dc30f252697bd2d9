import zlib from "node:zlib";

// Deflate on every core: one gzip member made of pieces deflated in parallel (see below).

/** Pieces compressed at once on the thread pool; a piece is at most this many bytes. */
const PIECE_BYTES = 4 * 1024 * 1024;

/**
 * One gzip member made as pigz makes it: the data is cut into pieces, each deflated on its
 * own (in parallel on libuv's thread pool, each with its plane's strategy) and ended with a
 * sync flush but the last, so the pieces concatenate into one deflate stream; the header and
 * the CRC-32 and length trailer are written around it. Any gzip reader inflates it.
 */
export async function gzipPieces(raw: Buffer, planes: { end: number; strategy: number }[], opts: { level?: number; strategy?: number } = {}): Promise<Buffer> {
  const level = opts.level ?? 6;
  const pieces: { start: number; end: number; strategy: number }[] = [];
  let start = 0;
  for (const plane of planes) {
    const strategy = opts.strategy ?? plane.strategy;
    for (; start < plane.end; start = Math.min(plane.end, start + PIECE_BYTES)) pieces.push({ start, end: Math.min(plane.end, start + PIECE_BYTES), strategy });
  }
  if (!pieces.length || pieces.at(-1)!.end !== raw.length) pieces.push({ start, end: raw.length, strategy: zlib.constants.Z_RLE });
  const deflated = await Promise.all(
    pieces.map(
      (piece, i) =>
        new Promise<Buffer>((resolve, reject) =>
          zlib.deflateRaw(raw.subarray(piece.start, piece.end), { level, strategy: piece.strategy, finishFlush: i === pieces.length - 1 ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH }, (error, out) => (error ? reject(error) : resolve(out))),
        ),
    ),
  );
  // RFC 1952: magic, deflate, no flags, no time, no extra flags, OS unknown.
  const header = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(zlib.crc32(raw) >>> 0, 0);
  trailer.writeUInt32LE(raw.length % 2 ** 32, 4);
  return Buffer.concat([header, ...deflated, trailer]);
}
