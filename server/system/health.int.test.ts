import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { checkHealth } from "./health.service";
import { recordHeartbeat, releaseDeadWorkers } from "./heartbeat.service";

// A database of its own: other test files run workers that beat in the shared one.
let database: TestDatabase;
let db: Db;
beforeAll(async () => {
  database = await createTestDatabase("health");
  db = createDb(database.url, 2);
});
afterAll(async () => {
  await db.$disconnect();
  await database.drop();
});

describe("health", () => {
  it("is degraded with no worker, ok while one beats, degraded again once it goes quiet", async () => {
    expect(await checkHealth(db, { staleAfterMs: 1_000 })).toMatchObject({ status: "degraded", database: { ok: true }, worker: { ok: false, lastSeen: null, workers: 0 } });
    await recordHeartbeat(db, ["worker-a", "worker-b"]);
    const ok = await checkHealth(db, { staleAfterMs: 1_000 });
    expect(ok).toMatchObject({ status: "ok", worker: { ok: true, workers: 2 }, queue: { depth: 0, running: 0 } });
    await new Promise((r) => setTimeout(r, 1_200));
    expect(await checkHealth(db, { staleAfterMs: 1_000 })).toMatchObject({ status: "degraded", worker: { ok: false } });
  });

  it("releases the jobs of workers that stopped beating, and only those", async () => {
    await db.$executeRaw`DELETE FROM "WorkerHeartbeat"`;
    await recordHeartbeat(db, ["dead-worker"]);
    await db.$executeRaw`UPDATE "WorkerHeartbeat" SET "lastSeen" = "lastSeen" - interval '1 hour' WHERE id = 'dead-worker'`;
    await recordHeartbeat(db, ["live-worker"]);
    await db.$executeRaw`SELECT graphile_worker.add_job('system.selftest', '{}'::json)`;
    await db.$executeRaw`UPDATE graphile_worker._private_jobs SET locked_by = 'dead-worker', locked_at = now()`;
    expect((await releaseDeadWorkers(db, 30_000)).map((w) => w.id)).toEqual(["dead-worker"]);
    const [job] = await db.$queryRaw<{ locked_by: string | null }[]>`SELECT locked_by FROM graphile_worker._private_jobs`;
    expect(job.locked_by).toBeNull();
    expect((await db.workerHeartbeat.findMany()).map((w) => w.id)).toEqual(["live-worker"]);
  });

  it("reports a database it cannot reach without passing on the driver's words", async () => {
    const unreachable = createDb("postgresql://nobody:wrong@127.0.0.1:1/none", 1);
    const health = await checkHealth(unreachable, { staleAfterMs: 1_000 });
    expect(health).toMatchObject({ status: "degraded", database: { ok: false, error: "Gantry cannot reach its database; the server log says why" } });
    await unreachable.$disconnect();
  });
});
