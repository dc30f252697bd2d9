import { z } from "zod";

// The agent channel's protocol: what the portal streams to an agent, what the agent posts back,
// and what the pages read. The agent imports this file, so it holds zod only (no Prisma).

/** NOTIFY channel: payload is an agent id whose queue changed; the web process holding its stream wakes. */
export const AGENT_COMMANDS_CHANNEL = "gantry_agent_commands";

/** A body from an agent is small (facts, a result); anything bigger is refused before it is read. */
export const AGENT_MESSAGE_MAX_BYTES = 256 * 1024;

export const agentNameSchema = z
  .string()
  .trim()
  .min(1, "Name the agent")
  .max(64, "An agent's name is at most 64 characters")
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "An agent's name is letters, digits, dots, dashes and underscores");

export const commandKindSchema = z.string().max(64).regex(/^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/, "a command kind is dotted lower-case words, e.g. host.facts");

const text = (max: number) => z.string().max(max);

export const serialAdapterSchema = z.object({
  /** The device node, e.g. /dev/ttyACM0. */
  path: text(512),
  /** Its stable /dev/serial/by-id name, when udev made one. */
  byId: text(512).nullable(),
});

/** A version found on the host, or null with the reason it was not (absence is a fact too). */
const probedVersion = z.object({ version: text(100).nullable(), note: text(500).nullable() });

export const hostFactsSchema = z.object({
  hostname: text(255),
  os: text(200),
  kernel: text(200),
  arch: text(50),
  cpu: z.object({ model: text(200), cores: z.number().int().min(0).max(4096) }),
  memoryBytes: z.number().int().min(0),
  python: probedVersion,
  lerobot: probedVersion,
  serialAdapters: z.array(serialAdapterSchema).max(256),
  node: text(50),
  agentVersion: text(50),
});
export type HostFacts = z.infer<typeof hostFactsSchema>;

// Inputs and results of the commands the portal knows how to ask for. The agent's registry
// (agent/commands.ts) validates each input with the same schema before running a handler.
export const commandInputSchemas = {
  "host.facts": z.object({}).strict(),
  ping: z
    .object({
      /** Wait this long before answering: a slow command to watch progress and failure with. */
      holdMs: z.number().int().min(0).max(120_000).default(0),
    })
    .strict(),
} as const;
export type KnownCommandKind = keyof typeof commandInputSchemas;
export const knownCommandKinds = Object.keys(commandInputSchemas) as KnownCommandKind[];

export const pingResultSchema = z.object({ agentTime: z.string(), heldMs: z.number() });

// Portal → agent, one SSE event type "agent" whose data says which.
export const agentStreamEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("hello"), agentId: z.uuid(), connectionId: z.uuid(), heartbeatMs: z.number().int().positive() }),
  z.object({ type: z.literal("command"), id: z.uuid(), kind: commandKindSchema, input: z.unknown(), deadline: z.iso.datetime() }),
]);
export type AgentStreamEvent = z.infer<typeof agentStreamEventSchema>;

// Agent → portal, POST /api/agents/messages.
const commandRef = { agentId: z.uuid(), commandId: z.uuid() };
export const agentMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("facts"), agentId: z.uuid(), facts: hostFactsSchema }),
  z.object({ type: z.literal("progress"), ...commandRef, progress: z.number().min(0).max(1).nullable(), step: text(200).nullable() }),
  z.object({
    type: z.literal("result"),
    ...commandRef,
    outcome: z.discriminatedUnion("ok", [z.object({ ok: z.literal(true), result: z.json() }), z.object({ ok: z.literal(false), error: text(2000).min(1) })]),
  }),
]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;
export const agentMessageReplySchema = z.object({
  /** False when the command had already ended (a repeat, or too late): nothing was changed. */
  accepted: z.boolean(),
  status: z.string(),
});

export const commandStatuses = ["queued", "sent", "running", "succeeded", "failed", "cancelled"] as const;

export const agentCommandSchema = z.object({
  id: z.uuid(),
  agentId: z.uuid(),
  kind: z.string(),
  input: z.unknown(),
  status: z.enum(commandStatuses),
  progress: z.number().nullable(),
  step: z.string().nullable(),
  result: z.unknown(),
  error: z.string().nullable(),
  deadline: z.date(),
  createdBy: z.string(),
  createdAt: z.date(),
  finishedAt: z.date().nullable(),
});

export const agentSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  isOnline: z.boolean(),
  lastSeenAt: z.date().nullable(),
  connectedAt: z.date().nullable(),
  version: z.string().nullable(),
  hostFacts: hostFactsSchema.nullable(),
  factsAt: z.date().nullable(),
  tokenName: z.string().nullable(),
});

export const sendCommandInput = z.object({
  agentId: z.uuid(),
  kind: z.enum(knownCommandKinds as [KnownCommandKind, ...KnownCommandKind[]]),
  input: z.record(z.string(), z.unknown()).default({}),
  /** Seconds the command may take, delivery included, before it fails. */
  timeoutSeconds: z.number().int().min(1).max(3600).default(30),
});
