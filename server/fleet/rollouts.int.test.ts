import { describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { createRolloutInput } from "./fleet.schemas";
import { createRollout, getRollout, settleStrandedTargets } from "./rollouts.service";

// Without a worker on this database: what a rollout does before any device job runs.

async function setUp() {
  const db = testDb();
  const { actor, orgId } = await createOrgWithMember(db, "operator");
  const model = await db.model.create({ data: { orgId, name: "p" } });
  const ready = await db.modelVersion.create({ data: { orgId, modelId: model.id, number: 1, status: "ready", source: { kind: "upload" }, sha256: "a".repeat(64), bytes: 10n } });
  const fetching = await db.modelVersion.create({ data: { orgId, modelId: model.id, number: 2, status: "fetching", source: { kind: "upload" } } });
  const devices = [];
  for (const name of ["d1", "d2", "d3"]) {
    devices.push(await db.device.create({ data: { orgId, name, host: "192.0.2.1", username: "robot", authKind: "password", credential: "v1:", modelDir: "/opt/gantry", restartCommand: "true", healthCommand: "true", group: "g", tags: name === "d3" ? ["odd"] : [] } }));
  }
  return { db, actor, orgId, ready, fetching, devices };
}

/** Takes this file's device jobs off the shared queue, so no other test file's worker runs them. */
async function dropQueuedDeployJobs(db: ReturnType<typeof testDb>, orgId: string) {
  const jobs = await db.job.findMany({ where: { orgId, kind: "fleet.deploy-device" }, select: { id: true } });
  await db.$executeRaw`SELECT graphile_worker.remove_job(key) FROM graphile_worker.jobs WHERE key = ANY(${jobs.map((j) => j.id)}::text[])`;
}

describe("rollouts", () => {
  it("queues only the canary, each device on its own queue, and refuses a version that is not ready", async () => {
    const { db, actor, orgId, ready, fetching } = await setUp();
    await expect(createRollout(db, { actor, input: createRolloutInput.parse({ modelVersionId: fetching.id, selector: { group: "g" } }) })).rejects.toThrow(/only a ready version/);
    await expect(createRollout(db, { actor, input: createRolloutInput.parse({ modelVersionId: ready.id, selector: { tag: "none" } }) })).rejects.toThrow(/No device matches/);
    const { id } = await createRollout(db, { actor, input: createRolloutInput.parse({ modelVersionId: ready.id, selector: { group: "g" }, strategy: { kind: "canary", canary: 1, batchSize: 2, maxFailurePercent: 0 } }) });
    const r = await getRollout(db, { orgId, deploymentId: id });
    expect(r.targets.map((t) => [t.deviceName, t.phase, t.state])).toEqual([["d1", 0, "queued"], ["d2", 1, "pending"], ["d3", 1, "pending"]]);
    const queues = await db.$queryRaw<{ queue_name: string }[]>`SELECT queue_name FROM graphile_worker.jobs WHERE key = ${r.targets[0].jobId}`;
    expect(queues).toEqual([{ queue_name: `fleet-device:${r.targets[0].deviceId}` }]);
    await dropQueuedDeployJobs(db, orgId);
  });

  it("waits for a start time, and fails a target whose job was cancelled, stopping the canary rollout", async () => {
    const { db, actor, orgId, ready } = await setUp();
    const startAt = new Date(Date.now() + 3600_000);
    const { id } = await createRollout(db, { actor, input: createRolloutInput.parse({ modelVersionId: ready.id, selector: { group: "g" }, strategy: { kind: "canary", canary: 1, batchSize: 1, maxFailurePercent: 0 }, startAt }) });
    let r = await getRollout(db, { orgId, deploymentId: id });
    expect(r.status).toBe("scheduled");
    const [runAt] = await db.$queryRaw<{ run_at: Date }[]>`SELECT run_at FROM graphile_worker.jobs WHERE key = ${r.targets[0].jobId}`;
    expect(runAt.run_at.getTime()).toBe(startAt.getTime());
    // A start beyond a year (or beyond what a date holds) is refused, not taken as "now".
    for (const far of ["+010000-01-01T00:00:00Z", new Date(Date.now() + 400 * 24 * 3600_000).toISOString()]) {
      const parsed = createRolloutInput.safeParse({ modelVersionId: ready.id, selector: { group: "g" }, startAt: far });
      expect(parsed.success, far).toBe(false);
      expect(parsed.error?.issues[0]).toMatchObject({ path: ["startAt"], message: expect.stringMatching(/within a year/) });
    }
    await db.job.update({ where: { id: r.targets[0].jobId! }, data: { status: "cancelled" } });
    expect(await settleStrandedTargets(db)).toBeGreaterThanOrEqual(1);
    r = await getRollout(db, { orgId, deploymentId: id });
    expect(r.status).toBe("aborted");
    expect(r.targets.map((t) => t.state)).toEqual(["failed", "skipped", "skipped"]);
    expect(r.targets[0].error).toBe("The deployment job was cancelled");
    await dropQueuedDeployJobs(db, orgId);
  });
});
