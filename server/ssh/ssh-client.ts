import crypto from "node:crypto";
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from "ssh2";
import { AppError } from "../errors";
import { checkHost, type OutboundPurpose } from "../security/outbound";

// SSH connections to devices and hosts. The host key is pinned: on first contact the caller
// gets the key's SHA256 fingerprint to store, afterwards a different key is refused before
// any credential is sent (ssh2 checks the host key before authenticating). The host goes
// through the outbound policy first, and the connection goes to the address it checked.

export interface SshTarget {
  /** For messages: "jetson-3". */
  name: string;
  host: string;
  port: number;
  username: string;
  privateKey?: string;
  passphrase?: string;
  password?: string;
  /** "SHA256:…"; null on first contact, when whatever key the host offers is accepted and reported. */
  pinnedFingerprint: string | null;
  timeoutMs?: number;
  /** e.g. { cipher: ["aes128-gcm@openssh.com"] } for benchmarks against OpenSSH. */
  algorithms?: ConnectConfig["algorithms"];
  /** What the outbound policy judges the host as; default "device". */
  purpose?: OutboundPurpose;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Output as it arrives, for live logs. */
  onOutput?: (text: string, stream: "stdout" | "stderr") => void;
  /** Most output kept per stream (the tail is kept). */
  maxBytes?: number;
}

/** "SHA256:" and the unpadded base64 of the key blob's digest, as ssh-keygen -l prints it. */
export function fingerprintOf(key: Buffer): string {
  return `SHA256:${crypto.createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

export class HostKeyChangedError extends AppError {
  constructor(
    readonly target: string,
    readonly pinned: string,
    readonly offered: string,
  ) {
    super(
      "CONFLICT",
      `The host key of ${target} has changed: Gantry pinned ${pinned}, the host now offers ${offered}. ` +
        "Nothing was sent to it. If the device was reinstalled, check the new fingerprint on the device (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and have an admin re-pin it; otherwise someone may be in the middle.",
    );
  }
}

export class SshSession {
  private closed = false;
  private sftpChannel: Promise<SFTPWrapper> | null = null;

  constructor(
    readonly client: Client,
    readonly target: SshTarget,
    readonly fingerprint: string,
  ) {
    const markClosed = () => {
      this.closed = true;
      this.sftpChannel = null;
    };
    client.on("close", markClosed);
    client.on("end", markClosed);
    // A dropped connection after the handshake surfaces in the calls that were using it.
    client.on("error", markClosed);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Runs a command through the login shell; resolves with its exit code (non-zero is not an error). */
  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const { timeoutMs = 60_000, maxBytes = 256 * 1024 } = opts;
    const what = `on ${this.target.name}`;
    return new Promise<ExecResult>((resolve, reject) => {
      if (this.closed) return reject(connectionLost(this.target));
      let channel: ClientChannel | null = null;
      let isDone = false;
      const out = { stdout: "", stderr: "" };
      let code: number | null = null;
      let sig: string | null = null;
      const finish = (error: Error | null) => {
        if (isDone) return;
        isDone = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        this.client.removeListener("close", onClose);
        if (error) {
          channel?.close();
          reject(error);
        } else resolve({ code, signal: sig, ...out });
      };
      const timer = setTimeout(() => finish(new AppError("INTERNAL", `A command ${what} did not finish within ${Math.round(timeoutMs / 1000)} s and was stopped`)), timeoutMs);
      const onAbort = () => finish(opts.signal!.reason instanceof Error ? opts.signal!.reason : new Error("Cancelled"));
      const onClose = () => finish(connectionLost(this.target));
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      this.client.once("close", onClose);
      try {
        this.client.exec(command, (error, stream) => {
          if (error) return finish(new AppError("INTERNAL", `Could not run a command ${what}: ${error.message}`, { cause: error }));
          channel = stream;
          const take = (key: "stdout" | "stderr") => (chunk: Buffer) => {
            const text = chunk.toString("utf8");
            out[key] = (out[key] + text).slice(-maxBytes);
            opts.onOutput?.(text, key);
          };
          stream.on("data", take("stdout"));
          stream.stderr.on("data", take("stderr"));
          stream.on("exit", (c: number | null, s?: string) => {
            code = c;
            sig = s ?? null;
          });
          stream.on("close", () => finish(null));
        });
      } catch (error) {
        finish(connectionLost(this.target, error));
      }
    });
  }

  /** One SFTP channel per connection, opened on first use. */
  sftp(): Promise<SFTPWrapper> {
    if (this.closed) return Promise.reject(connectionLost(this.target));
    this.sftpChannel ??= new Promise<SFTPWrapper>((resolve, reject) =>
      this.client.sftp((error, sftp) => {
        if (error) {
          this.sftpChannel = null;
          reject(new AppError("INTERNAL", `${this.target.name} refused an SFTP session: ${error.message}; check that its sshd has an sftp Subsystem`, { cause: error }));
        } else {
          sftp.on("close", () => (this.sftpChannel = null));
          resolve(sftp);
        }
      }),
    );
    return this.sftpChannel;
  }

  close(): void {
    this.closed = true;
    this.client.end();
  }
}

export function connectionLost(target: SshTarget, cause?: unknown): AppError {
  return new AppError("INTERNAL", `The SSH connection to ${target.name} (${target.host}:${target.port}) was lost`, { cause });
}

/**
 * One connection for a piece of work: `connect()` answers the open session and dials again once
 * it dropped, and callers that ask together after a drop (transfers running side by side) share
 * one dial. `close()` ends it; the next `connect()` dials afresh.
 */
export function redialling(dial: () => Promise<SshSession>): { connect: () => Promise<SshSession>; close: () => void } {
  let session: SshSession | null = null;
  let dialling: Promise<SshSession> | null = null;
  return {
    connect: async () => {
      if (session && !session.isClosed) return session;
      dialling ??= dial()
        .then((s) => (session = s))
        .finally(() => (dialling = null));
      return dialling;
    },
    close: () => {
      session?.close();
      session = null;
    },
  };
}

/**
 * `work` on a session, failing with "connection lost" as soon as the connection closes: ssh2 does
 * not always answer SFTP requests that were in flight when it dropped, so waiting on them alone
 * could wait for ever.
 */
export function whileConnected<T>(session: SshSession, work: () => Promise<T>): Promise<T> {
  if (session.isClosed) return Promise.reject(connectionLost(session.target));
  return new Promise<T>((resolve, reject) => {
    const onClose = () => reject(connectionLost(session.target));
    session.client.once("close", onClose);
    work()
      .then(resolve, reject)
      .finally(() => session.client.removeListener("close", onClose));
  });
}

/** Connects and authenticates; refuses a host the outbound policy refuses, and a host key other than the pinned one. */
export async function connectSsh(target: SshTarget, { signal }: { signal?: AbortSignal } = {}): Promise<SshSession> {
  const { address } = await checkHost(target.host, target.purpose ?? "device");
  return openSession(target, address, { signal });
}

function openSession(target: SshTarget, address: string, { signal }: { signal?: AbortSignal }): Promise<SshSession> {
  const timeoutMs = target.timeoutMs ?? 15_000;
  return new Promise<SshSession>((resolve, reject) => {
    const client = new Client();
    let offered: string | null = null;
    let isDone = false;
    const fail = (error: Error) => {
      if (isDone) return;
      isDone = true;
      signal?.removeEventListener("abort", onAbort);
      client.end();
      client.destroy?.();
      reject(error);
    };
    const onAbort = () => fail(signal!.reason instanceof Error ? signal!.reason : new Error("Cancelled"));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    client.once("ready", () => {
      if (isDone) return client.end();
      isDone = true;
      signal?.removeEventListener("abort", onAbort);
      resolve(new SshSession(client, target, offered!));
    });
    client.on("error", (error: Error & { level?: string; code?: string }) => {
      if (offered && target.pinnedFingerprint && offered !== target.pinnedFingerprint) return fail(new HostKeyChangedError(target.name, target.pinnedFingerprint, offered));
      fail(describeConnectError(target, error));
    });
    // Closed before the handshake finished: whatever listens there is not an SSH server we can use.
    client.on("close", () => fail(noSshAnswer(target)));
    try {
      client.connect({
        host: address,
        port: target.port,
        username: target.username,
        privateKey: target.privateKey,
        passphrase: target.passphrase,
        password: target.password,
        readyTimeout: timeoutMs,
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        algorithms: target.algorithms,
        hostVerifier: (key: Buffer) => {
          offered = fingerprintOf(key);
          return target.pinnedFingerprint === null || offered === target.pinnedFingerprint;
        },
      });
    } catch (error) {
      // ssh2 throws synchronously for a key it cannot parse.
      fail(new AppError("BAD_REQUEST", `The private key for ${target.name} could not be read: ${(error as Error).message}`, { cause: error }));
    }
  });
}

function describeConnectError(target: SshTarget, error: Error & { level?: string; code?: string }): AppError {
  const where = `${target.name} (${target.host}:${target.port})`;
  if (error.level === "client-authentication") {
    return new AppError(
      "BAD_REQUEST",
      target.password
        ? `${where} refused the password for user ${target.username}; check the user and password`
        : `${where} refused the SSH key for user ${target.username}; check its authorized_keys`,
      { cause: error },
    );
  }
  if (error.message.includes("parse privateKey") || error.message.includes("Cannot parse")) {
    return new AppError("BAD_REQUEST", `The private key for ${target.name} could not be read: ${error.message}`, { cause: error });
  }
  // Refused, unreachable, timed out, or something other than sshd answered: one message for all,
  // so Test connection cannot be used to tell open ports from closed ones.
  return noSshAnswer(target, error);
}

function noSshAnswer(target: SshTarget, cause?: unknown): AppError {
  return new AppError(
    "INTERNAL",
    `Could not open an SSH session with ${target.name} (${target.host}:${target.port}): the connection failed or timed out, or what answered was not an SSH server. Check that it is on and on the network, and that sshd listens on port ${target.port}`,
    { cause },
  );
}
