import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { AppError } from "../errors";
import { cancelAgentCommand, sendAgentCommand } from "./commands.service";
import { compatStartInstallation } from "./compat.service";

// One recipe at a time on an agent, however many web processes the requests reach: each
// "process" here is a Prisma client with its own connections, racing the others.

const db = testDb();
const processes: Db[] = [createDb(process.env.DATABASE_URL!, 2), createDb(process.env.DATABASE_URL!, 2), createDb(process.env.DATABASE_URL!, 2)];
let actor: OrgActor;

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "owner")).owner;
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.$disconnect()));
});

async function makeAgent(name: string) {
  return db.agent.create({ data: { orgId: actor.orgId, name: `${name}-${Date.now().toString(36)}`, tokenId: null } });
}

const install = (p: Db, agent: string) => compatStartInstallation(p, { actor, input: { installation_path: "~/lerobot", selected_robot: "so101", agent } });

describe("one recipe at a time on an agent", () => {
  it("starts one of many simultaneous start-installations from several web processes; the rest get 409 naming it", async () => {
    const agent = await makeAgent("race-pc");
    const outcomes = await Promise.allSettled(Array.from({ length: 9 }, (_, i) => install(processes[i % processes.length]!, agent.name)));
    const started = outcomes.filter((o) => o.status === "fulfilled");
    expect(started).toHaveLength(1);
    const commandId = (started[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof install>>>).value.command_id;
    for (const o of outcomes.filter((o) => o.status === "rejected")) {
      const error = (o as PromiseRejectedResult).reason;
      expect(error).toBeInstanceOf(AppError);
      expect(error.code).toBe("CONFLICT");
      expect(error.message).toContain(`"Install LeRobot" is already starting on ${agent.name} (command ${commandId}, started by ${actor.label}`);
      expect(error.message).toContain("POST /api/plugplay/cancel-installation");
    }
    expect(await db.agentCommand.count({ where: { agentId: agent.id, kind: "recipe.run" } })).toBe(1);

    // The recipe runner on the Agents page is refused the same way, another recipe included.
    await expect(sendAgentCommand(processes[1]!, { actor, input: { agentId: agent.id, kind: "recipe.run", input: { recipe: "dialout", version: 1, params: {} }, timeoutSeconds: 600 } })).rejects.toThrow(
      new RegExp(`"Install LeRobot" is already starting on ${agent.name} \\(command ${commandId}.*one recipe runs on an agent at a time — wait for it to end, or stop it on the Agents page`),
    );
    // Other commands still go through while it runs.
    await expect(sendAgentCommand(processes[2]!, { actor, input: { agentId: agent.id, kind: "ping", input: {}, timeoutSeconds: 30 } })).resolves.toMatchObject({ kind: "ping" });

    // Once it is cancelled, the next one starts.
    await cancelAgentCommand(db, { actor, commandId });
    await expect(install(processes[0]!, agent.name)).resolves.toMatchObject({ status: "started" });
  });

  it("does not hold other agents, and a recipe past its deadline does not hold its own", async () => {
    const [a, b] = [await makeAgent("pc-a"), await makeAgent("pc-b")];
    const [first, second] = await Promise.all([install(processes[0]!, a.name), install(processes[1]!, b.name)]);
    expect(first.command_id).not.toBe(second.command_id);

    await db.agentCommand.update({ where: { id: first.command_id }, data: { status: "running", deadline: new Date(Date.now() - 1000) } });
    const next = await install(processes[2]!, a.name);
    expect(next.command_id).not.toBe(first.command_id);
    expect(await db.agentCommand.findUniqueOrThrow({ where: { id: first.command_id } })).toMatchObject({ status: "failed", error: expect.stringMatching(/did not finish on .* within its .* deadline/) });
  });
});
