import type { z } from "zod";
import { isUniqueViolation, type Db, type Tx } from "../db";
import { env } from "../env";
import { AppError } from "../errors";
import { recordAudit } from "../audit/audit.service";
import type { OrgActor } from "../auth/roles";
import { Prisma } from "../generated/prisma/client";
import { RECIPES } from "./recipes";
import { AGENT_COMMANDS_CHANNEL, agentSchema, commandInputSchemas, hostFactsSchema, IN_FLIGHT_STATUSES, isInFlight, type agentCommandSchema, type sendCommandInput } from "./hardware.schemas";

// Agents and their commands as the pages see them, and the sweep that ends commands which can
// no longer finish. The sweep runs wherever someone looks (a list, a stream's heartbeat), so a
// command never hangs even when no web process holds its agent's stream any more.

type AgentRow = Prisma.AgentGetPayload<{ include: { token: { select: { name: true } } } }>;
type CommandRow = Prisma.AgentCommandGetPayload<object>;

/** Online: a stream is open and its web process marked it seen lately (a dead process leaves a stale mark). */
export function isAgentOnline(agent: Pick<AgentRow, "connectionId" | "lastSeenAt">, now = Date.now()): boolean {
  return Boolean(agent.connectionId && agent.lastSeenAt && now - agent.lastSeenAt.getTime() < 3 * env().AGENT_PRESENCE_MS);
}

function toAgentDto(row: AgentRow): z.infer<typeof agentSchema> {
  const facts = hostFactsSchema.safeParse(row.hostFacts);
  return {
    id: row.id,
    name: row.name,
    isOnline: isAgentOnline(row),
    lastSeenAt: row.lastSeenAt,
    connectedAt: row.connectionId ? row.connectedAt : null,
    version: row.version,
    hostFacts: facts.success ? facts.data : null,
    factsAt: row.factsAt,
    tokenName: row.token?.name ?? null,
  };
}

function toCommandDto(row: CommandRow): z.infer<typeof agentCommandSchema> {
  return { id: row.id, agentId: row.agentId, kind: row.kind, input: row.input, status: row.status, progress: row.progress, step: row.step, result: row.result, error: row.error, log: row.log, deadline: row.deadline, createdBy: row.createdBy, createdAt: row.createdAt, finishedAt: row.finishedAt };
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/**
 * Ends the commands that cannot finish any more: past their deadline, or sent to an agent that
 * has been gone longer than the grace (a reconnect within the grace resumes them instead).
 */
export async function expireAgentCommands(db: Db, scope: { orgId?: string; agentId?: string }, now = new Date()): Promise<number> {
  const grace = env().AGENT_GRACE_MS;
  const staleBefore = new Date(now.getTime() - 3 * env().AGENT_PRESENCE_MS - grace);
  const rows = await db.agentCommand.findMany({
    where: { ...scope, status: { in: IN_FLIGHT_STATUSES } },
    include: { agent: { select: { name: true, connectionId: true, disconnectedAt: true, lastSeenAt: true } } },
    take: 500,
  });
  let ended = 0;
  for (const row of rows) {
    const { agent } = row;
    const doing = row.step ? `running ${row.kind} (${row.step})` : row.status === "running" ? `running ${row.kind}` : `${row.kind} was on its way to it`;
    let error: string | null = null;
    if (row.deadline <= now) {
      const took = seconds(row.deadline.getTime() - row.createdAt.getTime());
      error = row.status === "queued" ? `${agent.name} did not take ${row.kind} within ${took}: the agent is offline or not connected — start \`gantry-agent connect\` on it` : `${row.kind} did not finish on ${agent.name} within its ${took} deadline`;
    } else if (row.status !== "queued") {
      const goneAt = agent.connectionId ? (agent.lastSeenAt && agent.lastSeenAt < staleBefore ? agent.lastSeenAt : null) : agent.disconnectedAt;
      if (goneAt && now.getTime() - goneAt.getTime() >= grace) error = `The agent ${agent.name} disconnected while ${doing}, and did not come back within ${seconds(grace)}`;
    }
    if (!error) continue;
    const { count } = await db.agentCommand.updateMany({ where: { id: row.id, status: row.status }, data: { status: "failed", error, finishedAt: now } });
    ended += count;
  }
  return ended;
}

export async function listAgents(db: Db, { actor }: { actor: OrgActor }) {
  const rows = await db.agent.findMany({ where: { orgId: actor.orgId }, include: { token: { select: { name: true } } }, orderBy: { name: "asc" } });
  return rows.map(toAgentDto);
}

export async function getAgent(db: Db, { actor, agentId }: { actor: OrgActor; agentId: string }) {
  const row = await db.agent.findFirst({ where: { id: agentId, orgId: actor.orgId }, include: { token: { select: { name: true } } } });
  if (!row) throw new AppError("NOT_FOUND", "No such agent in this organisation");
  return toAgentDto(row);
}

export async function listAgentCommands(db: Db, { actor, agentId, limit }: { actor: OrgActor; agentId: string; limit: number }) {
  await getAgent(db, { actor, agentId });
  await expireAgentCommands(db, { orgId: actor.orgId, agentId });
  const rows = await db.agentCommand.findMany({ where: { orgId: actor.orgId, agentId }, orderBy: { createdAt: "desc" }, take: limit });
  return rows.map(toCommandDto);
}

export async function getAgentCommand(db: Db, { actor, commandId }: { actor: OrgActor; commandId: string }) {
  const row = await db.agentCommand.findFirst({ where: { id: commandId, orgId: actor.orgId } });
  if (!row) throw new AppError("NOT_FOUND", "No such command in this organisation");
  if (isInFlight(row.status) && (await expireAgentCommands(db, { orgId: actor.orgId, agentId: row.agentId }))) {
    return toCommandDto((await db.agentCommand.findUniqueOrThrow({ where: { id: commandId } })) as CommandRow);
  }
  return toCommandDto(row);
}

/** The recipe running on an agent, named for the person whose second one was refused. */
export async function describeRunningRecipe(db: Db, agent: { id: string; name: string }): Promise<string> {
  const running = await db.agentCommand.findFirst({ where: { agentId: agent.id, kind: "recipe.run", status: { in: IN_FLIGHT_STATUSES } }, orderBy: { createdAt: "desc" } });
  if (!running) return `Another recipe was starting on ${agent.name} at the same moment`;
  const input = running.input as { recipe?: string; fromStep?: string };
  const recipe = RECIPES[input.recipe as keyof typeof RECIPES];
  const title = recipe ? `"${recipe.title}"` : `recipe ${input.recipe ?? "?"}`;
  const step = running.step ? `, at ${running.step}` : "";
  return `${title} is already ${running.status === "running" ? "running" : "starting"} on ${agent.name} (command ${running.id}, started by ${running.createdBy} at ${running.createdAt.toISOString()}${step})`;
}

/**
 * Queues a command for an agent and wakes its stream; the agent need not be online (it gets it on
 * connecting, before the deadline). A recipe is refused while another runs on the same agent:
 * Postgres decides (a partial unique index), so two web processes cannot both start one.
 */
export async function sendAgentCommand(db: Db, { actor, input, busyHint }: { actor: OrgActor; input: z.output<typeof sendCommandInput>; busyHint?: string }) {
  const agent = await db.agent.findFirst({ where: { id: input.agentId, orgId: actor.orgId }, select: { id: true, name: true } });
  if (!agent) throw new AppError("NOT_FOUND", "No such agent in this organisation");
  const parsed = commandInputSchemas[input.kind].safeParse(input.input);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `The ${input.kind} command's input is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "input"} ${i.message}`).join("; ")}`);
  const deadline = new Date(Date.now() + input.timeoutSeconds * 1000);
  // A recipe left behind by an agent that went away, or past its deadline, does not hold the agent.
  if (input.kind === "recipe.run") await expireAgentCommands(db, { orgId: actor.orgId, agentId: agent.id });
  try {
    return await queueCommand(db, actor, agent, input.kind, parsed.data as Prisma.InputJsonValue, deadline);
  } catch (error) {
    if (input.kind !== "recipe.run" || !isUniqueViolation(error)) throw error;
    throw new AppError("CONFLICT", `${await describeRunningRecipe(db, agent)}: one recipe runs on an agent at a time — ${busyHint ?? "wait for it to end, or stop it on the Agents page"}`, { cause: error });
  }
}

async function queueCommand(db: Db, actor: OrgActor, agent: { id: string; name: string }, kind: string, input: Prisma.InputJsonValue, deadline: Date) {
  const row = await db.$transaction(async (tx) => {
    const created = await tx.agentCommand.create({
      data: { orgId: actor.orgId, agentId: agent.id, kind, input, deadline, createdById: actor.userId, createdBy: actor.label },
    });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "agent.command", target: agent.name, data: { agentId: agent.id, commandId: created.id, kind } });
    // Delivered when the transaction commits: the stream never reads the queue before the row is there.
    await tx.$executeRaw`SELECT pg_notify(${AGENT_COMMANDS_CHANNEL}, ${agent.id})`;
    return created;
  });
  return toCommandDto(row);
}

/** Forgets an agent and its commands; a still-running agent is cut off at its next message or heartbeat. */
export async function removeAgent(db: Db, { actor, agentId }: { actor: OrgActor; agentId: string }): Promise<void> {
  await db.$transaction(async (tx) => {
    const agent = await tx.agent.findFirst({ where: { id: agentId, orgId: actor.orgId }, include: { robots: { select: { name: true } } } });
    if (!agent) throw new AppError("NOT_FOUND", "No such agent in this organisation");
    // Its arms (and their calibration history) would go with it: they are removed on purpose, first.
    if (agent.robots.length) throw new AppError("CONFLICT", `${agent.name} has ${agent.robots.length === 1 ? "an arm" : `${agent.robots.length} arms`} (${agent.robots.map((r) => r.name).join(", ")}) with their calibration history: remove ${agent.robots.length === 1 ? "it" : "them"} on the Robots page first, or keep the agent (it registers again under its name when it reconnects)`);
    await tx.agent.delete({ where: { id: agentId } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "agent.remove", target: agent.name, data: { agentId } });
    await tx.$executeRaw`SELECT pg_notify(${AGENT_COMMANDS_CHANNEL}, ${agentId})`;
  });
}

/** Cancels a command that has not ended; the agent is told to stop it if it already has it. An ended command is left as it is. */
export async function cancelAgentCommand(db: Db, { actor, commandId }: { actor: OrgActor; commandId: string }) {
  const row = await db.agentCommand.findFirst({ where: { id: commandId, orgId: actor.orgId }, include: { agent: { select: { name: true } } } });
  if (!row) throw new AppError("NOT_FOUND", "No such command in this organisation");
  await db.$transaction(async (tx) => {
    if (!(await cancelInFlight(tx, row.agentId, { id: commandId }, `Cancelled by ${actor.label}`))) return;
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "agent.command.cancel", target: row.agent.name, data: { agentId: row.agentId, commandId, kind: row.kind } });
  });
  return toCommandDto(await db.agentCommand.findUniqueOrThrow({ where: { id: commandId } }));
}

/**
 * Cancels an agent's commands that match `where` and have not ended, with `reason` as their
 * error, and wakes the agent's stream so the agent is told to stop them. Returns how many.
 */
export async function cancelInFlight(tx: Tx, agentId: string, where: Prisma.AgentCommandWhereInput, reason: string): Promise<number> {
  const { count } = await tx.agentCommand.updateMany({
    where: { ...where, agentId, status: { in: IN_FLIGHT_STATUSES } },
    data: { status: "cancelled", error: reason, finishedAt: new Date() },
  });
  if (count) await tx.$executeRaw`SELECT pg_notify(${AGENT_COMMANDS_CHANNEL}, ${agentId})`;
  return count;
}
