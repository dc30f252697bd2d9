import pg from "pg";
import { databaseUrl } from "../db";
import { realtimeHub } from "../jobs/hub";
import { PgUploadLocker } from "./pg-upload-locker";

/** Upload requests one web process serves at once: each holds one connection for its lock. */
export const UPLOAD_LOCK_CONNECTIONS = 16;

const globalForLocks = globalThis as unknown as { gantryUploadLocks?: { waiting: PgUploadLocker; tryOnce: PgUploadLocker } };

function lockers() {
  if (!globalForLocks.gantryUploadLocks) {
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: UPLOAD_LOCK_CONNECTIONS, idleTimeoutMillis: 10_000, keepAlive: true });
    pool.on("error", (error) => console.warn(`An idle upload-lock connection failed: ${error.message}`));
    const hub = realtimeHub();
    globalForLocks.gantryUploadLocks = { waiting: new PgUploadLocker({ pool, hub }), tryOnce: new PgUploadLocker({ pool, hub, acquireTimeoutMs: 0 }) };
  }
  return globalForLocks.gantryUploadLocks;
}

/** The process's locks on uploads, shared with every other process through Postgres: tus's semantics (wait up to 30 s, ask the holder to let go). */
export const uploadLocker = (): PgUploadLocker => lockers().waiting;

/** A model upload's locks: a piece refuses at once while another is written; a cancel asks it to stop and waits. */
export const modelUploadLocks = (): { locks: PgUploadLocker; waitingLocks: PgUploadLocker } => ({ locks: lockers().tryOnce, waitingLocks: lockers().waiting });
