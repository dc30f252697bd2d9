import fs from "node:fs";
import type { SFTPWrapper } from "ssh2";
import { AppError, isAppError } from "../errors";
import { connectionLost, whileConnected, type SshSession } from "./ssh-client";

// Uploads over SFTP that survive a dropped connection: the bytes go to "<remote>.part", and a
// new attempt stats the part and goes on from its size instead of starting again. Once the
// part is whole it is flushed (fsync@openssh.com) and renamed over the final name in one
// step (posix-rename@openssh.com), so the final name only ever holds a complete file.
// Writes are pipelined (many requests in flight), which is what makes SFTP fast.

/** Bytes per write request when the server does not say how long a write it takes. */
const CHUNK = 32 * 1024;
/** The longest write request sent, whatever the server allows (OpenSSH's sftp-server takes 255 KiB). */
const MAX_CHUNK = 255 * 1024;
/** Bytes of write requests in flight: OpenSSH's channel window (2 MiB), as 64 requests of 32 KiB. */
const IN_FLIGHT_BYTES = 64 * 32 * 1024;
const READ_BLOCK = 1024 * 1024;

/**
 * The longest write the server takes: ssh2 asks a server that offers limits@openssh.com (OpenSSH
 * 8.7 and later) when the SFTP session starts, as OpenSSH's own sftp and scp do, and uses them.
 * Fewer, longer requests cost both ends less per byte (each request is a packet to frame and a
 * status to answer). Not in ssh2's types.
 */
function writeLength(sftp: SFTPWrapper): number {
  const negotiated = (sftp as unknown as { _maxWriteLen?: unknown })._maxWriteLen;
  return typeof negotiated === "number" && Number.isSafeInteger(negotiated) && negotiated > 0 ? Math.min(negotiated, MAX_CHUNK) : CHUNK;
}

export interface UploadOptions {
  /** Opens (or reuses) a connection; called again after one drops. */
  connect: () => Promise<SshSession>;
  localPath: string;
  remotePath: string;
  signal?: AbortSignal;
  /** Attempts in all, counting the first; a connection lost mid-way uses one. */
  maxAttempts?: number;
  onProgress?: (sent: number, total: number) => void;
  /** Bytes per SFTP write request, and requests in flight (tuning; by default what the server says it takes, 2 MiB in flight). */
  chunkBytes?: number;
  inFlight?: number;
  /** Told when an attempt resumes from bytes already on the device. */
  onResume?: (offset: number, attempt: number) => void;
}

export interface UploadResult {
  bytes: number;
  attempts: number;
  /** Bytes that were already on the device when the last attempt started. */
  resumedFrom: number;
}

export async function uploadResumable(opts: UploadOptions): Promise<UploadResult> {
  const { maxAttempts = 5 } = opts;
  const total = (await fs.promises.stat(opts.localPath)).size;
  const part = `${opts.remotePath}.part`;
  let lastError: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    opts.signal?.throwIfAborted();
    try {
      const session = await opts.connect();
      const offset = await whileConnected(session, async () => {
        const sftp = await session.sftp();
        let from = (await statSize(sftp, part)) ?? 0;
        if (from > total) {
          await call<void>((cb) => sftp.unlink(part, cb));
          from = 0;
        }
        if (from > 0) opts.onResume?.(from, attempt);
        await writeFrom(session, sftp, opts, part, from, total);
        await call<void>((cb) => sftp.rename(part, opts.remotePath, cb)).catch(async () => {
          // Plain SFTP rename fails when the target exists; OpenSSH's extension replaces it.
          await call<void>((cb) => sftp.ext_openssh_rename(part, opts.remotePath, cb));
        });
        return from;
      });
      return { bytes: total, attempts: attempt, resumedFrom: offset };
    } catch (error) {
      lastError = error;
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (isAppError(error) && error.code !== "INTERNAL") throw error;
      if (attempt < maxAttempts) await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** (attempt - 1), 3000)));
    }
  }
  throw new AppError("INTERNAL", `Uploading to ${opts.remotePath} failed after ${maxAttempts} attempts: ${(lastError as Error)?.message}`, { cause: lastError });
}

async function statSize(sftp: SFTPWrapper, remote: string): Promise<number | null> {
  try {
    return (await call<{ size: number }>((cb) => sftp.stat(remote, cb))).size;
  } catch (error) {
    if ((error as { code?: number }).code === 2) return null; // SSH_FX_NO_SUCH_FILE
    throw error;
  }
}

async function writeFrom(session: SshSession, sftp: SFTPWrapper, opts: UploadOptions, part: string, offset: number, total: number): Promise<void> {
  const handle = await call<Buffer>((cb) => sftp.open(part, offset > 0 ? "r+" : "w", 0o644, cb)).catch((error: Error & { code?: number }) => {
    if (error.code === 3) throw new AppError("BAD_REQUEST", `Permission denied writing ${part}; check that the device user owns the model directory`, { cause: error });
    throw error;
  });
  const local = await fs.promises.open(opts.localPath, "r");
  try {
    // Requests are sent in file order and sftp-server handles them in the order they arrive,
    // so whatever part of them a dropped connection lets through is a prefix of the file:
    // the part never has a hole, and its size is where the next attempt goes on from.
    let written = offset;
    let inFlight = 0;
    let failure: unknown = null;
    let wake: (() => void) | null = null;
    const settle = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    // Requests in flight when the connection drops are not always answered: stop waiting.
    const onClose = () => {
      failure ??= connectionLost(session.target);
      settle();
    };
    session.client.once("close", onClose);
    sftp.once("close", onClose);
    const chunk = opts.chunkBytes ?? writeLength(sftp);
    const inFlightMax = opts.inFlight ?? Math.max(4, Math.floor(IN_FLIGHT_BYTES / chunk));
    // Local reads in large blocks (one thread-pool round trip each), sent as chunk-sized requests.
    const blockBytes = Math.max(chunk, READ_BLOCK);
    outer: for (let blockAt = offset; blockAt < total; ) {
      const blockLength = Math.min(blockBytes, total - blockAt);
      const block = Buffer.allocUnsafe(blockLength);
      const { bytesRead } = await local.read(block, 0, blockLength, blockAt);
      if (bytesRead !== blockLength) throw new AppError("INTERNAL", `${opts.localPath} changed while it was being uploaded`);
      for (let at = 0; at < blockLength; ) {
        while (inFlight >= inFlightMax && !failure) await new Promise<void>((r) => (wake = r));
        opts.signal?.throwIfAborted();
        if (session.isClosed) failure ??= connectionLost(session.target);
        if (failure) break outer;
        const length = Math.min(chunk, blockLength - at);
        inFlight++;
        sftp.write(handle, block, at, length, blockAt + at, (error) => {
          inFlight--;
          if (error) failure ??= error;
          else {
            written += length;
            opts.onProgress?.(written, total);
          }
          settle();
        });
        at += length;
      }
      blockAt += blockLength;
    }
    while (inFlight > 0 && !failure) await new Promise<void>((r) => (wake = r));
    session.client.removeListener("close", onClose);
    sftp.removeListener("close", onClose);
    if (failure) throw failure;
    await call<void>((cb) => sftp.ext_openssh_fsync(handle, cb)).catch(() => {});
  } finally {
    await local.close();
    // On a lost connection no answer would come.
    if (!session.isClosed) await call<void>((cb) => sftp.close(handle, cb)).catch(() => {});
  }
}

function call<T>(fn: (cb: (error: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      fn((error, value) => (error ? reject(error) : resolve(value)));
    } catch (error) {
      reject(error);
    }
  });
}
