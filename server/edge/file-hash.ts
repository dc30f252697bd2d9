import type crypto from "node:crypto";
import fs from "node:fs";

// Shared by the agent and the portal: a file (or its first bytes) fed to a hash in pieces, so a
// video of gigabytes never sits in memory whole.

/** Adds `file` — its first `bytes` when given — to `hash`; returns how many bytes it read. */
export async function hashFileInto(hash: crypto.Hash, file: string, bytes?: number): Promise<number> {
  if (bytes === 0) return 0;
  let read = 0;
  for await (const chunk of fs.createReadStream(file, { end: bytes === undefined ? undefined : bytes - 1, highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
    read += (chunk as Buffer).length;
  }
  return read;
}
