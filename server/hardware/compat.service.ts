import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { cancelAgentCommand, getAgentCommand, isAgentOnline, sendAgentCommand } from "./commands.service";
import { RECIPES } from "./recipes";
import { agentNameSchema, commandResultSchemas, hostFactsSchema, isInFlight, serialPortPathSchema, type KnownCommandKind } from "./hardware.schemas";
import { updateRobot } from "./robots.service";

// The earlier plug & play endpoints, answered through one of the organisation's agents (the
// earlier backend answered from its own machine, which could never see the user's arm). The
// agent is the one named by `agent`, or the only one online; the shapes are the earlier ones.

export const compatAgentQuery = z.object({ agent: agentNameSchema.optional() });

/** The agent these endpoints act through: named, or the only one online. */
async function chooseAgent(db: Db, actor: OrgActor, name: string | undefined) {
  if (name) {
    const agent = await db.agent.findUnique({ where: { orgId_name: { orgId: actor.orgId, name } } });
    if (!agent) throw new AppError("NOT_FOUND", `No agent named "${name}" in this organisation; the Agents page lists them`);
    return agent;
  }
  const agents = await db.agent.findMany({ where: { orgId: actor.orgId }, orderBy: { name: "asc" } });
  const online = agents.filter((a) => isAgentOnline(a));
  if (online.length === 1) return online[0]!;
  if (online.length === 0) throw new AppError("CONFLICT", "No agent is online: run `gantry-agent connect` on the computer the arm is plugged into");
  throw new AppError("CONFLICT", `${online.length} agents are online (${online.map((a) => a.name).join(", ")}): say which with ?agent=<name>`);
}

/** Sends a command and waits for its outcome (these endpoints answered in one request). */
async function runAndWait<K extends KnownCommandKind & keyof typeof commandResultSchemas>(db: Db, actor: OrgActor, agentId: string, kind: K, input: Record<string, unknown>, timeoutSeconds: number): Promise<z.infer<(typeof commandResultSchemas)[K]>> {
  const sent = await sendAgentCommand(db, { actor, input: { agentId, kind, input, timeoutSeconds } });
  const until = Date.now() + timeoutSeconds * 1000 + 2000;
  for (;;) {
    const command = await getAgentCommand(db, { actor, commandId: sent.id });
    if (command.status === "succeeded") {
      const parsed = commandResultSchemas[kind].safeParse(command.result);
      if (!parsed.success) throw new AppError("CONFLICT", `The agent answered ${kind} in a shape this portal does not know: update gantry-agent`);
      return parsed.data as z.infer<(typeof commandResultSchemas)[K]>;
    }
    if (command.status === "failed" || command.status === "cancelled") throw new AppError("CONFLICT", command.error ?? `${kind} ${command.status}`);
    if (Date.now() > until) throw new AppError("CONFLICT", `The agent did not answer ${kind} in ${timeoutSeconds} s`);
    await sleep(100);
  }
}

/** `GET /api/plugplay/system-info`: what the agent's host is, from the facts it last sent. */
export async function compatSystemInfo(db: Db, { actor, agentName }: { actor: OrgActor; agentName?: string }) {
  const agent = await chooseAgent(db, actor, agentName);
  const facts = hostFactsSchema.safeParse(agent.hostFacts);
  if (!facts.success) throw new AppError("CONFLICT", `${agent.name} has not sent its host facts yet: wait for it to connect, or press Refresh facts on the Agents page`);
  const f = facts.data;
  return {
    os: f.os,
    platform: f.kernel,
    arch: f.arch,
    python_version: f.python.version,
    lerobot_installed: f.lerobot.version !== null,
    lerobot_version: f.lerobot.version,
    hostname: f.hostname,
    serial_adapters: f.serialAdapters.map((s) => s.byId ?? s.path),
    agent: agent.name,
    agent_online: isAgentOnline(agent),
  };
}

/** pyserial's hwid: `USB VID:PID=1A86:7523 SER=… ` (or `n/a` for a port without a USB adapter). */
function hwid(p: z.infer<(typeof commandResultSchemas)["ports.list"]>["ports"][number]): string {
  if (!p.vendorId || !p.productId) return "n/a";
  return `USB VID:PID=${p.vendorId.toUpperCase()}:${p.productId.toUpperCase()}${p.serialNumber ? ` SER=${p.serialNumber}` : ""}`;
}

/** `GET /api/plugplay/list-ports`: the agent's serial ports, as pyserial's comports() described them. */
export async function compatListPorts(db: Db, { actor, agentName }: { actor: OrgActor; agentName?: string }) {
  const agent = await chooseAgent(db, actor, agentName);
  const { ports } = await runAndWait(db, actor, agent.id, "ports.list", {}, 15);
  return {
    success: true,
    agent: agent.name,
    ports: ports.map((p) => ({ device: p.path, description: [p.manufacturer, p.product ?? p.adapter].filter(Boolean).join(" ") || "n/a", hwid: hwid(p), by_id: p.byId, vid: p.vendorId, pid: p.productId, serial_number: p.serialNumber })),
  };
}

export const compatPortConfigInput = z
  .object({
    leader_port: serialPortPathSchema.optional(),
    follower_port: serialPortPathSchema.optional(),
    agent: agentNameSchema.optional(),
  })
  .refine((v) => v.leader_port || v.follower_port, { message: "send leader_port, follower_port or both", path: ["follower_port"] });

/** `POST /api/plugplay/save-port-config`: the ports become the leader's and the follower's arms' on that agent. */
export async function compatSavePortConfig(db: Db, { actor, input }: { actor: OrgActor; input: z.output<typeof compatPortConfigInput> }) {
  const agent = await chooseAgent(db, actor, input.agent);
  const robots = await db.robot.findMany({ where: { orgId: actor.orgId, agentId: agent.id }, orderBy: { createdAt: "asc" } });
  const saved: Record<string, string> = {};
  for (const [role, port] of [["leader", input.leader_port], ["follower", input.follower_port]] as const) {
    if (!port) continue;
    const arms = robots.filter((r) => r.role === role);
    if (arms.length !== 1) throw new AppError("CONFLICT", arms.length ? `${agent.name} has ${arms.length} ${role} arms (${arms.map((r) => r.name).join(", ")}): set each one's port on its Robots page` : `${agent.name} has no ${role} arm yet: add it on the Robots page first`);
    await updateRobot(db, { actor, input: { robotId: arms[0]!.id, port } });
    saved[`${role}_port`] = port;
  }
  return { success: true, message: `Port configuration saved for ${agent.name}`, agent: agent.name, ...saved };
}

// Installation: the "Install LeRobot" recipe, run by the agent on its own computer.
export const compatStartInstallationInput = z.object({
  installation_path: z.string().max(255).optional(),
  selected_robot: z.string().max(64).optional(),
  agent: agentNameSchema.optional(),
});

/** Koch arms use Dynamixel motors; the SO arms Feetech. */
function extraFor(robot: string | undefined): "feetech" | "dynamixel" {
  return robot && /koch|dynamixel|aloha/i.test(robot) ? "dynamixel" : "feetech";
}

export async function compatStartInstallation(db: Db, { actor, input }: { actor: OrgActor; input: z.output<typeof compatStartInstallationInput> }) {
  const agent = await chooseAgent(db, actor, input.agent);
  const recipe = RECIPES["install-lerobot"];
  const params = recipe.params.safeParse({ path: input.installation_path, extra: extraFor(input.selected_robot) });
  if (!params.success) throw new AppError("BAD_REQUEST", `installation_path: ${params.error.issues.map((i) => i.message).join("; ")}`);
  // The earlier API answered a second start with 409 while one ran (its clients poll
  // installation-status); Postgres refuses the second, even from another web process.
  const command = await sendAgentCommand(db, {
    actor,
    input: { agentId: agent.id, kind: "recipe.run", input: { recipe: recipe.id, version: recipe.version, params: params.data }, timeoutSeconds: 3600 },
    busyHint: "follow it with GET /api/plugplay/installation-status, or cancel it first with POST /api/plugplay/cancel-installation",
  });
  return { success: true, status: "started", message: `Installing LeRobot on ${agent.name}`, install_path: params.data.path, robot: input.selected_robot ?? null, agent: agent.name, command_id: command.id };
}

async function latestInstallation(db: Db, orgId: string, agentId: string) {
  return db.agentCommand.findFirst({ where: { orgId, agentId, kind: "recipe.run", input: { path: ["recipe"], equals: "install-lerobot" } }, orderBy: { createdAt: "desc" } });
}

export async function compatInstallationStatus(db: Db, { actor, agentName }: { actor: OrgActor; agentName?: string }) {
  const agent = await chooseAgent(db, actor, agentName);
  const row = await latestInstallation(db, actor.orgId, agent.id);
  if (!row) return { active: false, running: false, status: "idle", progress: 0, current_step: null, logs: [], error: null, agent: agent.name };
  const command = await getAgentCommand(db, { actor, commandId: row.id });
  const result = commandResultSchemas["recipe.run"].safeParse(command.result);
  const isActive = isInFlight(command.status);
  const failedStep = result.success ? result.data.steps.find((s) => s.status === "failed") : undefined;
  const status = isActive ? "running" : command.status === "succeeded" ? (result.success && result.data.outcome === "succeeded" ? "completed" : "failed") : command.status;
  const input = row.input as { params?: { path?: string } };
  return {
    active: isActive,
    running: isActive,
    status,
    progress: Math.round((command.progress ?? 0) * 100),
    current_step: command.step,
    logs: command.log.split("\n").filter(Boolean).slice(-200),
    error: failedStep ? `${failedStep.title}: ${failedStep.note ?? "failed"}` : command.error,
    install_path: input.params?.path ?? null,
    agent: agent.name,
    command_id: command.id,
  };
}

export async function compatCancelInstallation(db: Db, { actor, agentName }: { actor: OrgActor; agentName?: string }) {
  const agent = await chooseAgent(db, actor, agentName);
  const row = await latestInstallation(db, actor.orgId, agent.id);
  if (!row || !isInFlight(row.status)) return { success: false, message: "No installation in progress" };
  await cancelAgentCommand(db, { actor, commandId: row.id });
  return { success: true, message: "Installation cancelled" };
}
