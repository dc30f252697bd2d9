/** `bytes` of seeded noise: the same seed gives the same bytes in any process. */
export function noiseBytes(bytes: number, seed = 1): Buffer {
  const words = Buffer.alloc(Math.ceil(bytes / 4) * 4);
  let x = seed;
  for (let i = 0; i < words.length; i += 4) {
    x = (x * 1103515245 + 12345) >>> 0;
    words.writeUInt32LE(x, i);
  }
  return words.subarray(0, bytes);
}

/**
 * Hands `data` over in 1 MiB chunks, each only when asked for (no read-ahead, unlike a Readable);
 * `pauseAt(offset)` runs before the chunk starting at offset is handed over.
 */
export async function* chunked(data: Buffer, pauseAt?: (offset: number) => Promise<void> | void): AsyncIterable<Buffer> {
  for (let i = 0; i < data.length; i += 1024 * 1024) {
    await pauseAt?.(i);
    yield data.subarray(i, Math.min(data.length, i + 1024 * 1024));
  }
}
