import crypto from "node:crypto";
import type pg from "pg";
import { ERRORS, type Lock, type Locker, type RequestRelease } from "@tus/server";
import type { RealtimeHub } from "../jobs/realtime";

// Locks on uploads that every web process shares. tus takes a lock on an upload for every
// request that touches it, and a request that wants a lock another request holds asks that one
// to let go (the holder then ends within tus's lockDrainTimeout). tus's own locker keeps its
// locks in one process's memory; with several web processes and no sticky routing, a resume can
// land on another process while the cut request still runs there. This locker keeps them in
// Postgres: a session-level advisory lock on a pooled connection of its own, held until unlock
// (a process that dies frees its locks with its sessions), and a release request sent with
// NOTIFY to whichever process holds it (each LISTENs on one channel through its realtime hub).

export const RELEASE_CHANNEL = "gantry_upload_release";
const ACQUIRE_TIMEOUT_MS = 30_000;
/** How often a waiter tries again, and asks the holder again to let go. */
const RETRY_MS = 100;
const ASK_AGAIN_MS = 1_000;
const CONNECT_MIN_MS = 5_000;

/** The part of the realtime hub the locker uses: one LISTEN connection per process. */
export type ReleaseListener = Pick<RealtimeHub, "listen" | "ensureConnected">;

/** 64 bits of the id's hash, as Postgres's bigint advisory-lock key. */
export function advisoryKey(id: string): string {
  const digest = crypto.createHash("sha256").update(`gantry-upload:${id}`).digest();
  return digest.readBigInt64BE(0).toString();
}

export class PgUploadLocker implements Locker {
  /** Locks this process holds, and how to ask each holder to let go. */
  private readonly held = new Map<string, RequestRelease>();
  private listening: Promise<void> | null = null;
  readonly acquireTimeoutMs: number;

  /** `acquireTimeoutMs: 0` tries once, and does not ask the holder to let go: a caller that would rather refuse than wait or cut another off. */
  constructor(private readonly opts: { pool: pg.Pool; hub: ReleaseListener; acquireTimeoutMs?: number }) {
    this.acquireTimeoutMs = opts.acquireTimeoutMs ?? ACQUIRE_TIMEOUT_MS;
  }

  newLock(id: string): Lock {
    return new PgUploadLock(id, this);
  }

  /**
   * Runs `work` holding the upload's lock if no request holds it, without asking a holder to let
   * go (a sweep must not cut an upload off); null, and `work` not run, when it is held.
   */
  async holdIfFree<T>(id: string, work: () => Promise<T>): Promise<T | null> {
    const client = await this.opts.pool.connect();
    const key = advisoryKey(id);
    let isHeld = false;
    try {
      isHeld = (await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1::bigint) as ok", [key])).rows[0].ok;
      if (!isHeld) return null;
      return await work();
    } finally {
      if (isHeld) await client.query("select pg_advisory_unlock($1::bigint)", [key]).catch(() => {});
      client.release();
    }
  }

  /** @internal */
  startListening(): Promise<void> {
    this.listening ??= (async () => {
      this.opts.hub.listen(RELEASE_CHANNEL, (id) => {
        const requestRelease = id ? this.held.get(id) : undefined;
        if (requestRelease) void Promise.resolve().then(requestRelease).catch(() => {});
      });
      await this.opts.hub.ensureConnected();
    })();
    return this.listening;
  }

  /** @internal */
  get pool(): pg.Pool {
    return this.opts.pool;
  }

  /** @internal */
  hold(id: string, requestRelease: RequestRelease): void {
    this.held.set(id, requestRelease);
  }

  /** @internal Forgets a holder, unless a later lock of this process holds the id by now. */
  drop(id: string, requestRelease: RequestRelease): void {
    if (this.held.get(id) === requestRelease) this.held.delete(id);
  }
}

class PgUploadLock implements Lock {
  private client: pg.PoolClient | null = null;
  private relay: ((error: Error) => void) | null = null;
  private requestRelease: RequestRelease | null = null;
  private readonly key: string;

  constructor(
    private readonly id: string,
    private readonly locker: PgUploadLocker,
  ) {
    this.key = advisoryKey(id);
  }

  async lock(stopSignal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    if (this.client) throw new Error(`The lock on upload ${this.id} is held already`);
    // A release request must reach this process for as long as it holds the lock.
    await this.locker.startListening();
    const deadline = Date.now() + this.locker.acquireTimeoutMs;
    let askedAt = 0;
    for (;;) {
      if (stopSignal.aborted) throw ERRORS.ERR_LOCK_TIMEOUT;
      // A locker with no time to wait still gets one try, and a moment for a connection.
      const client = await this.connect(Math.max(CONNECT_MIN_MS, deadline - Date.now()));
      // A checked-out client has no error listener of the pool's; a dropped session must not throw.
      let onError: (error: Error) => void = () => {};
      const relay = (error: Error) => onError(error);
      client.on("error", relay);
      let isHeld = false;
      try {
        const { rows } = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1::bigint) as ok", [this.key]);
        isHeld = rows[0].ok;
        if (!isHeld && this.locker.acquireTimeoutMs > 0 && Date.now() - askedAt >= ASK_AGAIN_MS) {
          askedAt = Date.now();
          await client.query("select pg_notify($1, $2)", [RELEASE_CHANNEL, this.id]);
        }
      } catch (error) {
        client.removeListener("error", relay);
        client.release(error as Error);
        throw error;
      }
      if (isHeld) {
        this.client = client;
        this.relay = relay;
        this.requestRelease = requestRelease;
        this.locker.hold(this.id, requestRelease);
        // The session ending frees the lock in Postgres: the request must stop writing too.
        onError = () => void Promise.resolve().then(requestRelease).catch(() => {});
        return;
      }
      client.removeListener("error", relay);
      client.release();
      if (Date.now() >= deadline) throw ERRORS.ERR_LOCK_TIMEOUT;
      await sleep(Math.min(RETRY_MS, Math.max(0, deadline - Date.now())), stopSignal);
    }
  }

  async unlock(): Promise<void> {
    const client = this.client;
    if (!client) throw new Error("Releasing an unlocked lock!");
    this.client = null;
    this.locker.drop(this.id, this.requestRelease!);
    this.requestRelease = null;
    const relay = this.relay!;
    this.relay = null;
    try {
      await client.query("select pg_advisory_unlock($1::bigint)", [this.key]);
      client.removeListener("error", relay);
      client.release();
    } catch (error) {
      // The session is gone or unusable: closing it frees the lock all the same.
      client.release(error as Error);
    }
  }

  private async connect(withinMs: number): Promise<pg.PoolClient> {
    let timer: NodeJS.Timeout | undefined;
    const connecting = this.locker.pool.connect();
    try {
      return await Promise.race([
        connecting,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(ERRORS.ERR_LOCK_TIMEOUT), Math.max(0, withinMs));
        }),
      ]);
    } catch (error) {
      // A connection that arrives after the deadline goes straight back.
      connecting.then((c) => c.release(), () => {});
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
