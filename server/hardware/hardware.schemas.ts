import { z } from "zod";
import { CalibrationSchema } from "./calibration.schemas";
import { recipeIds, RECIPE_LOG_LINE_MAX } from "./recipes";

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

/** `GET /api/agents/connect`: the agent's name and the version of gantry-agent it runs. */
export const agentConnectQuery = z.object({ name: agentNameSchema, version: z.string().max(50).optional() });

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

// The motor bus as the commands name it.
export const motorProtocolSchema = z.enum(["feetech", "dynamixel"]);
export const serialPortPathSchema = z
  .string()
  .min(2)
  .max(512)
  .regex(/^\/[^\0]*$/, "a serial port is an absolute path such as /dev/ttyACM0 or /dev/serial/by-id/…")
  .refine((p) => !p.split("/").includes(".."), "a serial port path cannot contain ..");
export const motorIdSchema = z.number().int().min(0, "a motor id is 0..252").max(252, "a motor id is 0..252");
export const motorBaudSchema = z.number().int().min(1200).max(4_000_000);
export const motorNameSchema = z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, "a motor name is lower-case letters, digits and _ (e.g. shoulder_pan)");
/** The arm's motors in its order (LeRobot's calibration keeps that order). */
export const motorListSchema = z
  .array(z.object({ name: motorNameSchema, id: motorIdSchema }).strict())
  .min(1)
  .max(32)
  .refine((ms) => new Set(ms.map((m) => m.name)).size === ms.length, "two motors have the same name")
  .refine((ms) => new Set(ms.map((m) => m.id)).size === ms.length, "two motors have the same id");
const busInput = { port: serialPortPathSchema, protocol: motorProtocolSchema };
/** Where LeRobot keeps a calibration on the agent's host: calibration/{kind}/{type}/{id}.json. */
export const calibrationFileSchema = z
  .object({
    kind: z.enum(["robots", "teleoperators"]),
    type: z.string().regex(/^[a-z0-9][a-z0-9_]{0,63}$/, "a robot type is LeRobot's, e.g. so101_follower"),
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "a robot id is letters, digits, '_', '-' or '.'").refine((v) => !v.includes(".."), "a robot id cannot contain .."),
  })
  .strict();

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
  /** The host's serial ports, with what identifies them. */
  "ports.list": z.object({}).strict(),
  /** Pings every id at each baud; problems are part of the answer. */
  "motors.scan": z
    .object({
      ...busInput,
      bauds: z.array(motorBaudSchema).min(1).max(16).optional(),
      ids: z.object({ from: motorIdSchema, to: motorIdSchema }).strict().optional(),
    })
    .strict(),
  /** One motor alone on the bus, found at whatever id and baud it has, given its id and baud. */
  "motors.setup": z.object({ ...busInput, motor: motorNameSchema, id: motorIdSchema.min(1, "a motor's id is 1..252"), baud: motorBaudSchema.default(1_000_000) }).strict(),
  /** Supply voltage read from the motors, against what the arm's role needs. */
  "motors.power": z.object({ ...busInput, ids: z.array(motorIdSchema).min(1).max(32), role: z.enum(["follower", "leader"]) }).strict(),
  /** Homing: the arm in the middle of its range; offsets written so each joint reads mid-range. */
  "calibration.home": z
    .object({
      ...busInput,
      motors: motorListSchema,
      /**
       * Motors that run the other way (LeRobot's koch_leader: elbow_flex): drive_mode 1, on
       * Dynamixel also Drive_Mode 1 in the motor. Left out when there are none, so an agent from
       * before it was added still homes the other arms.
       */
      inverted: z.array(motorNameSchema).max(32).optional(),
    })
    .strict(),
  /** Range of motion: positions recorded (and streamed as samples) while a person moves every joint. */
  "calibration.range": z
    .object({
      ...busInput,
      motors: motorListSchema,
      durationMs: z.number().int().min(1000).max(300_000).default(20_000),
      hz: z.number().int().min(1).max(200).default(50),
      /** Motors that turn all the way round (LeRobot gives them 0..4095): recorded but never "did not move". */
      fullTurn: z.array(motorNameSchema).max(32).default([]),
    })
    .strict(),
  /** Writes LeRobot's calibration file on the host and, with a port, the limits and offsets into the motors. */
  "calibration.write": z.object({ file: calibrationFileSchema, calibration: CalibrationSchema, port: serialPortPathSchema.optional(), protocol: motorProtocolSchema.optional() }).strict(),
  /** Reads LeRobot's calibration file on the host and, with a port, compares it with the motors' EEPROM. */
  "calibration.read": z.object({ file: calibrationFileSchema, port: serialPortPathSchema.optional(), protocol: motorProtocolSchema.optional() }).strict(),
  /** Sync-reads positions continuously and streams them as samples until the deadline. */
  "joints.stream": z.object({ ...busInput, motors: motorListSchema, calibration: CalibrationSchema.optional(), hz: z.number().int().min(1).max(200).default(60), durationMs: z.number().int().min(1000).max(3_600_000).default(60_000) }).strict(),
  /** One of the recipes compiled into the agent (server/hardware/recipes.ts), from a step on. */
  "recipe.run": z
    .object({
      recipe: z.enum(recipeIds),
      version: z.number().int().min(1),
      params: z.record(z.string(), z.unknown()).default({}),
      fromStep: z.string().max(64).optional(),
    })
    .strict(),
} as const;

export const serialPortInfoSchema = z.object({
  path: text(512),
  device: text(512),
  byId: text(512).nullable(),
  vendorId: text(16).nullable(),
  productId: text(16).nullable(),
  serialNumber: text(200).nullable(),
  manufacturer: text(200).nullable(),
  product: text(200).nullable(),
  adapter: text(100).nullable(),
});
export const foundMotorSchema = z.object({ id: z.number(), baud: z.number(), model: z.number(), modelName: z.string().nullable() });

// What the commands answer (the agent's handlers return these; the pages parse them).
export const commandResultSchemas = {
  "ports.list": z.object({ ports: z.array(serialPortInfoSchema), dir: z.string() }),
  "motors.scan": z.object({ found: z.array(foundMotorSchema), problems: z.array(z.object({ id: z.number(), baud: z.number(), reason: z.string() })), bauds: z.array(z.number()), tookMs: z.number() }),
  "motors.setup": z.object({ motor: z.string(), id: z.number(), baud: z.number(), model: z.number(), modelName: z.string().nullable(), was: z.object({ id: z.number(), baud: z.number() }) }),
  "motors.power": z.object({ readings: z.array(z.object({ id: z.number(), volts: z.number().nullable(), error: z.string().nullable() })), verdict: z.enum(["ok", "wrong-supply", "unknown"]), message: z.string() }),
  "calibration.home": z.object({
    positions: z.record(z.string(), z.number()),
    homingOffsets: z.record(z.string(), z.number()),
    /** Each motor's drive_mode for the calibration file (absent from agents before it was added: all 0). */
    driveModes: z.record(z.string(), z.number()).optional(),
  }),
  "calibration.range": z.object({ ranges: z.record(z.string(), z.object({ min: z.number(), max: z.number() })), samples: z.number() }),
  "calibration.write": z.object({ path: z.string(), bytes: z.number(), wroteMotors: z.boolean() }),
  "calibration.read": z.object({
    path: z.string(),
    calibration: CalibrationSchema.nullable(),
    text: z.string().nullable(),
    /** With a port: every field where the file and the motor's EEPROM disagree. */
    drift: z.array(z.object({ motor: z.string(), field: z.string(), file: z.number(), motorValue: z.number().nullable() })).nullable(),
  }),
  "joints.stream": z.object({ samples: z.number(), hz: z.number() }),
  "recipe.run": z.object({
    recipe: z.string(),
    version: z.number(),
    outcome: z.enum(["succeeded", "failed"]),
    steps: z.array(
      z.object({
        id: z.string(),
        title: z.string(),
        status: z.enum(["succeeded", "failed", "skipped", "not-run"]),
        exitCode: z.number().nullable(),
        note: z.string().nullable(),
        durationMs: z.number().nullable(),
      }),
    ),
  }),
} as const;
export type KnownCommandKind = keyof typeof commandInputSchemas;
export const knownCommandKinds = Object.keys(commandInputSchemas) as KnownCommandKind[];

export const pingResultSchema = z.object({ agentTime: z.string(), heldMs: z.number() });

// Portal → agent, one SSE event type "agent" whose data says which.
export const agentStreamEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("hello"), agentId: z.uuid(), connectionId: z.uuid(), heartbeatMs: z.number().int().positive() }),
  z.object({ type: z.literal("command"), id: z.uuid(), kind: commandKindSchema, input: z.unknown(), deadline: z.iso.datetime() }),
  /** Someone cancelled a command this connection was sent: stop it (its answer is no longer wanted). */
  z.object({ type: z.literal("cancel"), id: z.uuid() }),
]);
export type AgentStreamEvent = z.infer<typeof agentStreamEventSchema>;

/** Milliseconds since the epoch, as a sender's clock gives them (within what a Date, and the database, can hold). */
export const epochMsSchema = z.number().finite().min(0).max(8.64e15);

/** One sync-read of the arm: raw positions by motor order and, with a calibration, LeRobot's units. */
export const jointSampleSchema = z.object({
  /** Milliseconds since the epoch on the agent's clock, when the read finished. */
  t: epochMsSchema,
  raw: z.array(z.number().int().min(-65536).max(65536)).max(32),
  values: z.array(z.number().finite().nullable()).max(32).nullable(),
});
export type JointSample = z.infer<typeof jointSampleSchema>;
/** `GET /api/agents/commands/{id}/samples`: batches of readings, then, once, how the command ended. */
export const jointSampleEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("samples"), seq: z.number().int(), samples: z.array(jointSampleSchema) }),
  z.object({ type: z.literal("ended"), seq: z.number().int(), status: z.string(), error: z.string().nullable() }),
]);
/** NOTIFY channel for joint samples: payload is `{commandId, samples}` JSON (Postgres caps it under 8000 bytes). */
export const JOINT_SAMPLES_CHANNEL = "gantry_joint_samples";

// Agent → portal, POST /api/agents/messages.
const commandRef = { agentId: z.uuid(), commandId: z.uuid() };
export const agentMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("facts"), agentId: z.uuid(), facts: hostFactsSchema }),
  z.object({ type: z.literal("progress"), ...commandRef, progress: z.number().min(0).max(1).nullable(), step: text(200).nullable() }),
  z.object({
    type: z.literal("log"),
    ...commandRef,
    /** The recipe step the lines come from. */
    step: text(64),
    lines: z.array(text(RECIPE_LOG_LINE_MAX)).min(1).max(200),
  }),
  z.object({
    type: z.literal("samples"),
    ...commandRef,
    /** A batch of joint readings (at most 64, a few hundred ms at LeRobot's rates). */
    samples: z.array(jointSampleSchema).min(1).max(64),
  }),
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
/** The statuses of a command that has not ended: waiting for its agent, on its way, or running. */
export const IN_FLIGHT_STATUSES: ("queued" | "sent" | "running")[] = ["queued", "sent", "running"];
export const isInFlight = (status: string) => (IN_FLIGHT_STATUSES as string[]).includes(status);

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
  /** A recipe's log so far, `[step] line` per line (the newest kept when it is long). */
  log: z.string(),
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

export const cancelCommandInput = z.object({ commandId: z.uuid() });

// Robots: an arm on an agent's host, as the set-up wizard records it.
const LEROBOT_ARM_MOTORS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"] as const;
const armMotors = LEROBOT_ARM_MOTORS.map((name, i) => ({ name, id: i + 1 }));

/**
 * LeRobot's arm types Gantry sets up: their bus, role and motors (ids 1–6, gripper last);
 * `fullTurn` motors get 0..4095 as their range, `inverted` ones drive_mode 1 (LeRobot's
 * koch_leader writes Drive_Mode INVERTED to elbow_flex and saves drive_mode 1 for it).
 */
export const ROBOT_TYPES = {
  so101_follower: { label: "SO-101 follower", protocol: "feetech", role: "follower", motors: armMotors, fullTurn: ["wrist_roll"], inverted: [] },
  so101_leader: { label: "SO-101 leader", protocol: "feetech", role: "leader", motors: armMotors, fullTurn: ["wrist_roll"], inverted: [] },
  so100_follower: { label: "SO-100 follower", protocol: "feetech", role: "follower", motors: armMotors, fullTurn: ["wrist_roll"], inverted: [] },
  so100_leader: { label: "SO-100 leader", protocol: "feetech", role: "leader", motors: armMotors, fullTurn: ["wrist_roll"], inverted: [] },
  koch_follower: { label: "Koch v1.1 follower", protocol: "dynamixel", role: "follower", motors: armMotors, fullTurn: ["shoulder_pan", "wrist_roll"], inverted: [] },
  koch_leader: { label: "Koch v1.1 leader", protocol: "dynamixel", role: "leader", motors: armMotors, fullTurn: ["shoulder_pan", "wrist_roll"], inverted: ["elbow_flex"] },
} as const satisfies Record<string, { label: string; protocol: z.infer<typeof motorProtocolSchema>; role: "follower" | "leader"; motors: { name: string; id: number }[]; fullTurn: readonly string[]; inverted: readonly string[] }>;
export type RobotType = keyof typeof ROBOT_TYPES;
export const robotTypeSchema = z.enum(Object.keys(ROBOT_TYPES) as [RobotType, ...RobotType[]]);

/** The file LeRobot reads this robot's calibration from, on the agent's host. */
export function robotCalibrationFile(robot: { role: string; type: string; name: string }): z.infer<typeof calibrationFileSchema> {
  return { kind: robot.role === "leader" ? "teleoperators" : "robots", type: robot.type, id: robot.name };
}

export const robotNameSchema = z
  .string()
  .trim()
  .min(1, "Name the arm")
  .max(64, "An arm's name is at most 64 characters")
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "An arm's name is letters, digits, '_', '-' or '.' (it names LeRobot's calibration file)")
  .refine((v) => !v.includes(".."), "An arm's name cannot contain ..");

export const calibrationSources = ["wizard", "import", "agent"] as const;

export const robotCalibrationSchema = z.object({
  id: z.uuid(),
  calibration: CalibrationSchema,
  source: z.enum(calibrationSources),
  note: z.string().nullable(),
  createdBy: z.string(),
  createdAt: z.date(),
});

/** A set-up check made for an arm before: when it ended, and the agent's answer. */
const lastCheck = <T extends z.ZodType>(result: T) => z.object({ at: z.date(), result }).nullable();
export const robotChecksSchema = z.object({ scan: lastCheck(commandResultSchemas["motors.scan"]), power: lastCheck(commandResultSchemas["motors.power"]) });

export const robotSchema = z.object({
  id: z.uuid(),
  agentId: z.uuid(),
  agentName: z.string(),
  isAgentOnline: z.boolean(),
  name: z.string(),
  role: z.enum(["follower", "leader"]),
  type: robotTypeSchema,
  protocol: motorProtocolSchema,
  port: z.string().nullable(),
  motors: z.array(z.object({ name: z.string(), id: z.number() })),
  calibration: robotCalibrationSchema.nullable(),
  createdAt: z.date(),
  updatedAt: z.date(),
});

export const createRobotInput = z.object({ agentId: z.uuid(), name: robotNameSchema, type: robotTypeSchema, port: serialPortPathSchema.nullable().default(null) });
export const updateRobotInput = z.object({ robotId: z.uuid(), port: serialPortPathSchema.nullable().optional(), motors: motorListSchema.optional() });
export const importCalibrationInput = z.object({
  robotId: z.uuid(),
  /** LeRobot's calibration JSON as text (a file a person uploads or pastes). */
  text: z.string().min(2).max(64 * 1024, "A calibration file is a few KB; this one is too big"),
  note: z.string().max(500).optional(),
});
export const applyCalibrationInput = z.object({
  robotId: z.uuid(),
  calibration: CalibrationSchema,
  source: z.enum(calibrationSources).default("wizard"),
  note: z.string().max(500).optional(),
  /** Also write the offsets and limits into the motors (not just LeRobot's file). */
  writeMotors: z.boolean().default(true),
});

/** `GET /api/robots/{id}/calibration`: the current calibration, or one from the arm's history. */
export const calibrationDownloadQuery = z.object({ calibrationId: z.uuid().optional() });
