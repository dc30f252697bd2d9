import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { startWorkerProcess } from "../../tests/helpers/worker-process";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { addTestedTarget, datasetWithBuild, isTrainerAlive, makeGpuHost, trainerControl } from "../../tests/helpers/training";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { startRun } from "./runs.service";

// A worker stopped with Ctrl-C (SIGINT) while it follows a training run: stopping interrupts
// the jobs it runs, and an interrupted training job must leave the run training on its host
// (only a cancel stops it there). A real sshd as the GPU host, real worker processes.

let database: TestDatabase;
let db: Db;
let rig: SshdRig;
let actor: OrgActor;
const children: ChildProcess[] = [];

beforeAll(async () => {
  database = await createTestDatabase("trainstop");
  db = createDb(database.url, 3);
  rig = await startSshdRig(1, { names: ["gpu-host"] });
  makeGpuHost(rig.devices[0]);
  actor = (await createOrgWithMember(db, "admin")).actor;
  await addTestedTarget(db, actor, rig, rig.devices[0]);
}, 60_000);
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await rig?.stop();
  await db?.$disconnect();
  await database?.drop();
});


const runOf = (runId: string) => db.trainingRun.findUniqueOrThrow({ where: { id: runId } });
const trainerAlive = isTrainerAlive;

describe("a worker stopped while it follows a training run", () => {
  it("leaves the run training on its host, and the next worker follows it to the end", async () => {
    // The trainer holds at step 30 until the first worker has gone, however slow the machine.
    trainerControl(rig.devices[0], "train-hold", "30");
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const first = startWorkerProcess(database.url, { tracked: children });
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 150, saveFreq: 50, logFreq: 10 } });
    await waitFor(async () => ((await runOf(runId)).lastStep ?? 0) >= 20, { timeoutMs: 60_000, what: "the run to reach step 20" });

    first.child.kill("SIGINT");
    expect((await first.exited).code).toBe(0);
    expect(first.output()).toMatch(/1 running job\(s\) interrupted/);
    expect(trainerAlive(runId)).toBe(true);
    expect((await runOf(runId)).status).not.toBe("cancelled");
    trainerControl(rig.devices[0], "train-hold", null);

    const second = startWorkerProcess(database.url, { tracked: children });
    const run = await waitFor(async () => {
      const r = await runOf(runId);
      return ["succeeded", "failed", "cancelled", "lost"].includes(r.status) && r;
    }, { timeoutMs: 90_000, what: "the run to end" });
    expect(run.status, `${run.error}\n${second.output()}`).toBe("succeeded");
    second.child.kill("SIGTERM");
    await second.exited;
  }, 180_000);
});
