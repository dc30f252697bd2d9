import crypto from "node:crypto";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { ERRORS } from "@tus/server";
import { testDb } from "../../tests/helpers/db";
import { waitFor } from "../../tests/helpers/factories";
import { RealtimeHub } from "../jobs/realtime";
import { PgUploadLocker, advisoryKey } from "./pg-upload-locker";

// Two lockers, each with its own pool and its own LISTEN connection: what two web processes have.
const db = testDb();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function processLocker(acquireTimeoutMs?: number) {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL!, max: 4 });
  const hub = new RealtimeHub({ url: process.env.DATABASE_URL!, db, jobEvents: false });
  cleanups.push(async () => {
    await hub.stop();
    await pool.end();
  });
  return new PgUploadLocker({ pool, hub, acquireTimeoutMs });
}

const uploadId = () => crypto.randomBytes(16).toString("hex");
const never = new AbortController().signal;

describe("PgUploadLocker", () => {
  it("lets a sweep work on an upload only while no request holds it, without asking the holder to let go", async () => {
    const [a, b] = [processLocker(), processLocker()];
    const id = uploadId();
    const request = a.newLock(id);
    let releaseAsked = 0;
    await request.lock(never, () => void releaseAsked++);
    let ran = 0;
    expect(await b.holdIfFree(id, async () => ++ran)).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect({ ran, releaseAsked }).toEqual({ ran: 0, releaseAsked: 0 });
    await request.unlock();
    // Free now: the work runs holding the lock, so a request waits for it to end.
    let requestIn = false;
    expect(
      await b.holdIfFree(id, async () => {
        const waiting = a.newLock(id);
        const locked = waiting.lock(never, () => {}).then(() => (requestIn = true));
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(requestIn).toBe(false);
        void locked.then(() => waiting.unlock());
        return ++ran;
      }),
    ).toBe(1);
    await waitFor(async () => requestIn, { what: "the request to take the lock once the sweep let go" });
  });

  it("lets one process at a time hold an upload, and asks the holder in the other process to let go", async () => {
    const [a, b] = [processLocker(), processLocker()];
    const id = uploadId();
    const first = a.newLock(id);
    let releaseAsked = 0;
    await first.lock(never, () => {
      releaseAsked++;
      // As tus does: the holder's request ends a moment later and gives the lock up.
      setTimeout(() => void first.unlock(), 300);
    });

    const second = b.newLock(id);
    const startedAt = Date.now();
    let secondReleaseAsked = 0;
    await second.lock(never, () => void secondReleaseAsked++);
    expect(releaseAsked).toBe(1);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(250);

    // Now the first process waits in turn, and the second is asked.
    const third = a.newLock(id);
    const thirdLocked = third.lock(never, () => {});
    await waitFor(async () => secondReleaseAsked > 0, { what: "a release request to the second process" });
    let isThirdIn = false;
    void thirdLocked.then(() => (isThirdIn = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(isThirdIn).toBe(false);
    await second.unlock();
    await thirdLocked;
    await third.unlock();
  });

  it("holds different uploads independently", async () => {
    const [a, b] = [processLocker(), processLocker(500)];
    const one = a.newLock(uploadId());
    await one.lock(never, () => {});
    const other = b.newLock(uploadId());
    await other.lock(never, () => {});
    await other.unlock();
    await one.unlock();
  });

  it("gives up with tus's lock timeout when the holder does not let go", async () => {
    const [a, b] = [processLocker(), processLocker(1_500)];
    expect(b.acquireTimeoutMs).toBe(1_500);
    expect(processLocker().acquireTimeoutMs).toBe(30_000);
    const id = uploadId();
    const held = a.newLock(id);
    let releaseAsked = 0;
    await held.lock(never, () => void releaseAsked++);
    const startedAt = Date.now();
    await expect(b.newLock(id).lock(never, () => {})).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1_400);
    expect(releaseAsked).toBeGreaterThanOrEqual(1);
    await held.unlock();
    const again = b.newLock(id);
    await again.lock(never, () => {});
    await again.unlock();
  });

  it("tries once when it has no time to wait", async () => {
    const [a, b] = [processLocker(), processLocker(0)];
    const id = uploadId();
    const held = a.newLock(id);
    await held.lock(never, () => {});
    await expect(b.newLock(id).lock(never, () => {})).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
    await held.unlock();
    const next = b.newLock(id);
    await next.lock(never, () => {});
    await next.unlock();
  });

  it("stops waiting when the request that wants the lock goes away", async () => {
    const [a, b] = [processLocker(), processLocker()];
    const id = uploadId();
    const held = a.newLock(id);
    await held.lock(never, () => {});
    const gone = new AbortController();
    const waiting = b.newLock(id).lock(gone.signal, () => {});
    setTimeout(() => gone.abort(), 200);
    await expect(waiting).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
    await held.unlock();
  });

  it("tells the holder to stop when its session is cut, since Postgres has freed the lock", async () => {
    const [a, b] = [processLocker(), processLocker()];
    const id = uploadId();
    const held = a.newLock(id);
    let releaseAsked = 0;
    await held.lock(never, () => void releaseAsked++);
    const [{ pid }] = await db.$queryRaw<{ pid: number }[]>`select pid from pg_locks where locktype = 'advisory' and granted and pid <> pg_backend_pid() and (classid::bigint << 32 | objid::bigint) = ${advisoryKey(id)}::bigint`;
    await db.$executeRaw`select pg_terminate_backend(${pid}::int)`;
    await waitFor(async () => releaseAsked > 0, { what: "the holder told its session ended" });
    const next = b.newLock(id);
    await next.lock(never, () => {});
    await next.unlock();
    await held.unlock(); // harmless: the session is gone
  });
});
