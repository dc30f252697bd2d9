import crypto from "node:crypto";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import type { ChannelSource } from "../jobs/realtime";
import { Prisma } from "../generated/prisma/client";
import { AGENT_COMMANDS_CHANNEL, hostFactsSchema, IN_FLIGHT_STATUSES, isInFlight, JOINT_SAMPLES_CHANNEL, type AgentMessage, type AgentStreamEvent, type JointSample } from "./hardware.schemas";
import { expireAgentCommands } from "./commands.service";
import { RECIPE_LOG_MAX_BYTES } from "./recipes";

// The portal's side of an agent's connection. The agent dials out (so it works behind NAT) and
// holds one long-lived server-sent-events stream on which the portal sends commands; it posts
// progress and results back as ordinary requests. SSE rather than WebSockets because Next's
// route handlers cannot upgrade a connection, and rather than long-polling because one open
// response delivers a command the moment it is queued without a request per command.
//
// Nothing here lives only in one web process's memory: presence (connection id, last seen) is
// in the Agent row, commands are rows, and a command queued by one web process wakes the stream
// held by another through NOTIFY (ids only; the stream re-reads its queue from the database).

export interface AgentSession {
  agentId: string;
  connectionId: string;
}

/** Registers (or takes back) the agent named `name` for this token and marks it connected. */
export async function openAgentSession(db: Db, { actor, name, version }: { actor: OrgActor; name: string; version: string | null }): Promise<AgentSession> {
  if (!actor.tokenId) throw new AppError("FORBIDDEN", "Agents connect with an API token (`gantry-agent login`), not a browser session");
  const connectionId = crypto.randomUUID();
  const now = new Date();
  const existing = await db.agent.findUnique({ where: { orgId_name: { orgId: actor.orgId, name } }, include: { token: { select: { revokedAt: true } } } });
  if (existing && existing.tokenId && existing.tokenId !== actor.tokenId && existing.token && !existing.token.revokedAt) {
    throw new AppError("CONFLICT", `An agent named "${name}" already connects with another API token; pick another name with --name, or remove that agent on the Agents page`);
  }
  try {
    const agent = await db.agent.upsert({
      where: { orgId_name: { orgId: actor.orgId, name } },
      create: { orgId: actor.orgId, name, tokenId: actor.tokenId, version, connectionId, connectedAt: now, lastSeenAt: now },
      update: { tokenId: actor.tokenId, version, connectionId, connectedAt: now, lastSeenAt: now, disconnectedAt: null },
    });
    return { agentId: agent.id, connectionId };
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new AppError("CONFLICT", `Another agent named "${name}" connected at the same moment; try again`);
    throw error;
  }
}

/** Marks the agent seen; false when this connection is no longer the agent's (it reconnected elsewhere, or was removed). */
export async function touchAgentSession(db: Db, session: AgentSession): Promise<boolean> {
  const { count } = await db.agent.updateMany({ where: { id: session.agentId, connectionId: session.connectionId }, data: { lastSeenAt: new Date() } });
  return count === 1;
}

/** The stream ended: offline from now, unless the agent has already opened a newer connection. */
export async function closeAgentSession(db: Db, session: AgentSession): Promise<void> {
  await db.agent.updateMany({ where: { id: session.agentId, connectionId: session.connectionId }, data: { connectionId: null, disconnectedAt: new Date() } });
}

/**
 * The commands to send on this connection now: queued ones, and ones sent on an earlier
 * connection that have not ended (after a reconnect the agent answers those again from what it
 * remembers, or runs them if it never got them). Marked sent on this connection.
 */
export async function takeCommandsToSend(db: Db, session: AgentSession): Promise<Extract<AgentStreamEvent, { type: "command" }>[] | "superseded"> {
  return db.$transaction(async (tx) => {
    // Only the agent's current connection sends: a stream left half-open by a reconnect to
    // another web process must not take the commands back and send them into the void.
    const current = await tx.$queryRaw<{ connectionId: string | null }[]>`SELECT "connectionId"::text FROM "Agent" WHERE id = ${session.agentId}::uuid FOR UPDATE`;
    if (current[0]?.connectionId !== session.connectionId) return "superseded";
    const rows = await tx.agentCommand.findMany({
      where: {
        agentId: session.agentId,
        deadline: { gt: new Date() },
        OR: [{ status: "queued" }, { status: { in: ["sent", "running"] }, NOT: { connectionId: session.connectionId } }, { status: { in: ["sent", "running"] }, connectionId: null }],
      },
      orderBy: { createdAt: "asc" },
      take: 50,
    });
    if (!rows.length) return [];
    const sentAt = new Date();
    const sent: typeof rows = [];
    for (const row of rows) {
      // Only if it is still as read: a cancel committed meanwhile (it does not lock the agent) wins.
      const { count } = await tx.agentCommand.updateMany({ where: { id: row.id, status: row.status }, data: { connectionId: session.connectionId, sentAt, ...(row.status === "queued" ? { status: "sent" } : {}) } });
      if (count === 1) sent.push(row);
    }
    return sent.map((row) => ({ type: "command" as const, id: row.id, kind: row.kind, input: row.input, deadline: row.deadline.toISOString() }));
  });
}

/**
 * Commands cancelled after they reached the agent, which this connection has not told it to
 * stop: ones told on an earlier connection are told again (that stream may have been half dead,
 * and the agent keeps running what it was running across a reconnect). Cancels of the last hour.
 */
export async function takeCancelsToSend(db: Db, session: AgentSession): Promise<string[]> {
  const agent = await db.agent.findUnique({ where: { id: session.agentId }, select: { connectedAt: true } });
  const connectedAt = agent?.connectedAt ?? new Date(0);
  const rows = await db.agentCommand.findMany({
    where: { agentId: session.agentId, status: "cancelled", sentAt: { not: null }, finishedAt: { gt: new Date(Date.now() - 60 * 60_000) }, OR: [{ cancelSentAt: null }, { cancelSentAt: { lt: connectedAt } }] },
    select: { id: true },
    take: 50,
  });
  if (!rows.length) return [];
  await db.agentCommand.updateMany({ where: { id: { in: rows.map((r) => r.id) } }, data: { cancelSentAt: new Date() } });
  return rows.map((r) => r.id);
}

/**
 * The events of one agent's stream: hello, then each command as it is queued, until the agent
 * goes away (`signal`) or connects again elsewhere. Marks the agent seen every `presenceMs`
 * and, on the way out, offline.
 */
export async function* agentStreamEvents(
  db: Db,
  { session, hub, presenceMs, heartbeatMs, signal, isStillAllowed, watchAccess }: {
    session: AgentSession; hub: ChannelSource; presenceMs: number; heartbeatMs: number; signal: AbortSignal;
    /** Whether the token may still drive the agent; asked whenever `watchAccess` says its access changed (a revoked token ends the stream). */
    isStillAllowed: () => Promise<boolean>;
    watchAccess: (changed: () => void) => () => void;
  },
): AsyncGenerator<AgentStreamEvent> {
  let wake: (() => void) | null = null;
  let isWoken = true; // read the queue once at the start
  let isAccessChanged = false;
  const poke = () => {
    isWoken = true;
    wake?.();
  };
  const unwatch = watchAccess(() => {
    isAccessChanged = true;
    poke();
  });
  // A null payload means the LISTEN connection was lost and came back: re-read to be sure.
  const unlisten = hub.listen(AGENT_COMMANDS_CHANNEL, (payload) => {
    if (payload === null || payload === session.agentId) poke();
  });
  signal.addEventListener("abort", poke, { once: true });
  try {
    yield { type: "hello", agentId: session.agentId, connectionId: session.connectionId, heartbeatMs };
    let lastTouch = Date.now();
    while (!signal.aborted) {
      if (isAccessChanged) {
        isAccessChanged = false;
        if (!(await isStillAllowed())) return;
      }
      if (isWoken) {
        isWoken = false;
        const commands = await takeCommandsToSend(db, session);
        if (commands === "superseded") return;
        for (const command of commands) yield command;
        for (const id of await takeCancelsToSend(db, session)) yield { type: "cancel", id };
      }
      if (signal.aborted) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, presenceMs - (Date.now() - lastTouch)));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        if (isWoken || signal.aborted) wake();
      });
      wake = null;
      if (signal.aborted) break;
      if (Date.now() - lastTouch >= presenceMs) {
        lastTouch = Date.now();
        if (!(await touchAgentSession(db, session))) return; // superseded by a newer connection
        await expireAgentCommands(db, { agentId: session.agentId });
      }
    }
  } finally {
    unlisten();
    unwatch();
    signal.removeEventListener("abort", poke);
    await closeAgentSession(db, session).catch(() => {});
  }
}

/** NOTIFY payloads are capped under 8000 bytes: a batch goes out in as many notifications as it needs. */
const NOTIFY_MAX_BYTES = 7000;

export async function publishJointSamples(db: Db, commandId: string, samples: JointSample[]): Promise<void> {
  let batch: JointSample[] = [];
  let size = 0;
  const flush = async () => {
    if (!batch.length) return;
    await db.$executeRaw`SELECT pg_notify(${JOINT_SAMPLES_CHANNEL}, ${JSON.stringify({ commandId, samples: batch })})`;
    batch = [];
    size = 0;
  };
  for (const sample of samples) {
    const bytes = JSON.stringify(sample).length + 1;
    if (size + bytes > NOTIFY_MAX_BYTES - 100) await flush();
    batch.push(sample);
    size += bytes;
  }
  await flush();
}

/** The agent a message names, which must be this token's agent in this organisation. */
async function requireOwnAgent(db: Db, actor: OrgActor, agentId: string): Promise<void> {
  const agent = await db.agent.findFirst({ where: { id: agentId, orgId: actor.orgId }, select: { tokenId: true } });
  if (!agent) throw new AppError("NOT_FOUND", "No such agent in this organisation; it may have been removed — restart `gantry-agent connect`");
  if (agent.tokenId !== actor.tokenId) throw new AppError("FORBIDDEN", "That agent connects with another API token");
}

/** Facts, progress or a result from an agent. A result for a command that has already ended changes nothing. */
export async function recordAgentMessage(db: Db, { actor, message }: { actor: OrgActor; message: AgentMessage }): Promise<{ accepted: boolean; status: string; kind?: string }> {
  if (!actor.tokenId) throw new AppError("FORBIDDEN", "Agents post with an API token, not a browser session");
  if (message.type === "samples") {
    // Live readings come many times a second: one query checks the command, its agent and the token.
    const command = await db.agentCommand.findFirst({ where: { id: message.commandId, agentId: message.agentId, agent: { orgId: actor.orgId, tokenId: actor.tokenId } }, select: { status: true, kind: true } });
    if (!command) {
      await requireOwnAgent(db, actor, message.agentId);
      throw new AppError("NOT_FOUND", "No such command for this agent");
    }
    // They are not kept: they go to whoever watches, in whichever web process.
    if (!isInFlight(command.status)) return { accepted: false, status: command.status };
    await publishJointSamples(db, message.commandId, message.samples);
    return { accepted: true, status: command.status, kind: command.kind };
  }
  await requireOwnAgent(db, actor, message.agentId);
  if (message.type === "facts") {
    await db.agent.update({ where: { id: message.agentId }, data: { hostFacts: message.facts, factsAt: new Date(), lastSeenAt: new Date() } });
    return { accepted: true, status: "stored" };
  }
  const command = await db.agentCommand.findFirst({ where: { id: message.commandId, agentId: message.agentId }, select: { status: true, kind: true } });
  if (!command) throw new AppError("NOT_FOUND", "No such command for this agent");
  const inFlight = { id: message.commandId, status: { in: IN_FLIGHT_STATUSES } };
  if (message.type === "log") {
    const text = message.lines.map((line) => `[${message.step}] ${line}\n`).join("");
    // Appended in SQL (two posts never lose each other's lines) and trimmed from the start past the cap.
    const count = await db.$executeRaw`
      UPDATE "AgentCommand" SET log = right(log || ${text}, ${RECIPE_LOG_MAX_BYTES})
      WHERE id = ${message.commandId}::uuid AND status IN ('queued', 'sent', 'running')`;
    return { accepted: count === 1, status: count === 1 ? "running" : command.status };
  }
  if (message.type === "progress") {
    const { count } = await db.agentCommand.updateMany({ where: inFlight, data: { status: "running", progress: message.progress, step: message.step } });
    return { accepted: count === 1, status: count === 1 ? "running" : command.status };
  }
  const finishedAt = new Date();
  const { outcome } = message;
  const data = outcome.ok
    ? { status: "succeeded" as const, result: outcome.result as Prisma.InputJsonValue, progress: 1, finishedAt }
    : { status: "failed" as const, error: outcome.error, finishedAt };
  // Only the first answer counts: a repeat (the agent answering a resend) leaves the row alone.
  const { count } = await db.agentCommand.updateMany({ where: inFlight, data });
  if (count === 1 && outcome.ok && command.kind === "host.facts") {
    const parsed = hostFactsSchema.safeParse(outcome.result);
    if (parsed.success) await db.agent.update({ where: { id: message.agentId }, data: { hostFacts: parsed.data, factsAt: finishedAt } });
  }
  return { accepted: count === 1, status: count === 1 ? data.status : command.status };
}
