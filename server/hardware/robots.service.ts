import type { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import { recordAudit } from "../audit/audit.service";
import type { OrgActor } from "../auth/roles";
import { Prisma } from "../generated/prisma/client";
import { formatCalibration, parseCalibration } from "../../agent/hardware/calibration";
import type { Calibration } from "./calibration.schemas";
import { CalibrationSchema, inMotorOrder } from "./calibration.schemas";
import { cancelInFlight, isAgentOnline, sendAgentCommand } from "./commands.service";
import {
  calibrationSources,
  commandResultSchemas,
  robotCalibrationFile,
  ROBOT_TYPES,
  robotTypeSchema,
  type applyCalibrationInput,
  type createRobotInput,
  type importCalibrationInput,
  type robotCalibrationSchema,
  type robotChecksSchema,
  type robotSchema,
  type updateRobotInput,
} from "./hardware.schemas";

// Arms set up through an agent: the port and motors the wizard found, and every calibration
// the arm has had (the newest is current). The calibration's home is LeRobot's file on the
// agent's host; the portal keeps the history, so a re-calibration can be compared with the last
// and an arm rebuilt on another computer gets its calibration back.

type RobotRow = Prisma.RobotGetPayload<{ include: { agent: { select: { name: true; connectionId: true; lastSeenAt: true } }; calibrations: true } }>;
type CalibrationRow = Prisma.RobotCalibrationGetPayload<object>;

const withCurrent = { agent: { select: { name: true, connectionId: true, lastSeenAt: true } }, calibrations: { orderBy: { createdAt: "desc" as const }, take: 1 } };

function toCalibrationDto(row: CalibrationRow): z.infer<typeof robotCalibrationSchema> {
  const source = calibrationSources.find((s) => s === row.source) ?? "wizard";
  return { id: row.id, calibration: inMotorOrder(CalibrationSchema.parse(row.calibration)), source, note: row.note, createdBy: row.createdBy, createdAt: row.createdAt };
}

function toRobotDto(row: RobotRow): z.infer<typeof robotSchema> {
  const type = robotTypeSchema.parse(row.type);
  const current = row.calibrations[0];
  return {
    id: row.id,
    agentId: row.agentId,
    agentName: row.agent.name,
    isAgentOnline: isAgentOnline(row.agent),
    name: row.name,
    role: row.role === "leader" ? "leader" : "follower",
    type,
    protocol: ROBOT_TYPES[type].protocol,
    port: row.port,
    motors: row.motors as { name: string; id: number }[],
    calibration: current ? toCalibrationDto(current) : null,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

async function findRobot(db: Db, actor: OrgActor, robotId: string): Promise<RobotRow> {
  const row = await db.robot.findFirst({ where: { id: robotId, orgId: actor.orgId }, include: withCurrent });
  if (!row) throw new AppError("NOT_FOUND", "No such arm in this organisation");
  return row;
}

export async function listRobots(db: Db, { actor, agentId }: { actor: OrgActor; agentId?: string }) {
  const rows = await db.robot.findMany({ where: { orgId: actor.orgId, ...(agentId ? { agentId } : {}) }, include: withCurrent, orderBy: { name: "asc" } });
  return rows.map(toRobotDto);
}

export async function getRobot(db: Db, { actor, robotId }: { actor: OrgActor; robotId: string }) {
  return toRobotDto(await findRobot(db, actor, robotId));
}

/**
 * The set-up checks made for an arm before this visit, for its set-up page: the newest motors
 * scan and supply check that ran to the end on its agent and port since the port was set (a
 * check made before was of whatever arm was on it), a supply check for the arm's role; null
 * where there is none. Their answers are parsed as the page parses a fresh one: a scan with
 * motors missing, or a wrong supply, is shown as it was found.
 */
export async function lastRobotChecks(db: Db, { actor, robotId }: { actor: OrgActor; robotId: string }): Promise<z.infer<typeof robotChecksSchema>> {
  const robot = await findRobot(db, actor, robotId);
  const last = async <K extends "motors.scan" | "motors.power">(kind: K) => {
    if (!robot.port) return null;
    const row = await db.agentCommand.findFirst({
      where: {
        orgId: actor.orgId,
        agentId: robot.agentId,
        kind,
        status: "succeeded",
        createdAt: { gte: robot.portSetAt },
        AND: [{ input: { path: ["port"], equals: robot.port } }, ...(kind === "motors.power" ? [{ input: { path: ["role"], equals: robot.role } }] : [])],
      },
      orderBy: { createdAt: "desc" },
      select: { result: true, finishedAt: true, createdAt: true },
    });
    const parsed = row ? commandResultSchemas[kind].safeParse(row.result) : null;
    return parsed?.success ? { at: row!.finishedAt ?? row!.createdAt, result: parsed.data as z.infer<(typeof commandResultSchemas)[K]> } : null;
  };
  return { scan: await last("motors.scan"), power: await last("motors.power") };
}

export async function createRobot(db: Db, { actor, input }: { actor: OrgActor; input: z.output<typeof createRobotInput> }) {
  const agent = await db.agent.findFirst({ where: { id: input.agentId, orgId: actor.orgId }, select: { id: true, name: true } });
  if (!agent) throw new AppError("NOT_FOUND", "No such agent in this organisation");
  const spec = ROBOT_TYPES[input.type];
  try {
    const row = await db.$transaction(async (tx) => {
      const created = await tx.robot.create({ data: { orgId: actor.orgId, agentId: agent.id, name: input.name, role: spec.role, type: input.type, protocol: spec.protocol, port: input.port, motors: spec.motors }, include: withCurrent });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "robot.create", target: input.name, data: { robotId: created.id, agentId: agent.id, type: input.type } });
      return created;
    });
    return toRobotDto(row);
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new AppError("CONFLICT", `An arm named "${input.name}" already exists in this organisation; LeRobot names its calibration file after it, so pick another name`);
    throw error;
  }
}

export async function updateRobot(db: Db, { actor, input }: { actor: OrgActor; input: z.output<typeof updateRobotInput> }) {
  const robot = await findRobot(db, actor, input.robotId);
  const row = await db.$transaction(async (tx) => {
    const isNewPort = input.port !== undefined && input.port !== robot.port;
    const updated = await tx.robot.update({ where: { id: robot.id }, data: { ...(isNewPort ? { port: input.port, portSetAt: new Date() } : {}), ...(input.motors ? { motors: input.motors } : {}) }, include: withCurrent });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "robot.update", target: robot.name, data: { robotId: robot.id, port: input.port, motors: input.motors } });
    return updated;
  });
  return toRobotDto(row);
}

/** Commands that read an arm continuously and stream it live: they stop when the arm is removed. */
const LIVE_KINDS = ["joints.stream", "calibration.range"];

/**
 * Removes an arm and its calibration history. Its live readings (joints, range recording) are
 * stopped with it: cancelled with the reason, so the agent lets go of the port and whoever
 * watches them sees why their stream ended.
 */
export async function deleteRobot(db: Db, { actor, robotId }: { actor: OrgActor; robotId: string }): Promise<void> {
  const robot = await findRobot(db, actor, robotId);
  await db.$transaction(async (tx) => {
    await tx.robot.delete({ where: { id: robot.id } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "robot.delete", target: robot.name, data: { robotId } });
    if (!robot.port) return;
    await cancelInFlight(tx, robot.agentId, { orgId: actor.orgId, kind: { in: LIVE_KINDS }, input: { path: ["port"], equals: robot.port } }, `Stopped: the arm ${robot.name} was removed by ${actor.label}`);
  });
}

export async function listRobotCalibrations(db: Db, { actor, robotId, limit }: { actor: OrgActor; robotId: string; limit: number }) {
  await findRobot(db, actor, robotId);
  const rows = await db.robotCalibration.findMany({ where: { robotId, orgId: actor.orgId }, orderBy: { createdAt: "desc" }, take: limit });
  return rows.map(toCalibrationDto);
}

/** A calibration must name exactly this arm's motors, with their ids. */
function checkFitsRobot(robot: RobotRow, calibration: Calibration): void {
  const motors = robot.motors as { name: string; id: number }[];
  const names = motors.map((m) => m.name);
  const problems: string[] = [];
  const missing = names.filter((n) => !calibration[n]);
  const extra = Object.keys(calibration).filter((n) => !names.includes(n));
  if (missing.length) problems.push(`it has no entry for ${missing.join(", ")}`);
  if (extra.length) problems.push(`${extra.join(", ")} ${extra.length > 1 ? "are not motors" : "is not a motor"} of this arm (${names.join(", ")})`);
  for (const m of motors) if (calibration[m.name] && calibration[m.name]!.id !== m.id) problems.push(`${m.name} has id ${calibration[m.name]!.id} but the arm's ${m.name} is motor ${m.id}`);
  if (problems.length) throw new AppError("BAD_REQUEST", `This calibration does not fit ${robot.name} (${robot.type}): ${problems.join("; ")}`);
}

async function recordCalibration(db: Db, actor: OrgActor, robot: RobotRow, calibration: Calibration, source: (typeof calibrationSources)[number], note: string | null) {
  checkFitsRobot(robot, calibration);
  return db.$transaction(async (tx) => {
    const row = await tx.robotCalibration.create({ data: { orgId: actor.orgId, robotId: robot.id, calibration, source, note, createdById: actor.userId, createdBy: actor.label } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "robot.calibration", target: robot.name, data: { robotId: robot.id, calibrationId: row.id, source } });
    return row;
  });
}

/** A LeRobot calibration file a person brought: checked, kept as the arm's current calibration (nothing is written to the arm). */
export async function importRobotCalibration(db: Db, { actor, input }: { actor: OrgActor; input: z.output<typeof importCalibrationInput> }) {
  const robot = await findRobot(db, actor, input.robotId);
  let calibration: Calibration;
  try {
    calibration = parseCalibration(input.text, "The file");
  } catch (error) {
    throw new AppError("BAD_REQUEST", (error as Error).message);
  }
  return toCalibrationDto(await recordCalibration(db, actor, robot, calibration, "import", input.note ?? null));
}

/**
 * Keeps a calibration as the arm's current one and sends it to the agent: LeRobot's file on
 * the host and, unless told not to, the offsets and limits into the motors. Returns the command
 * so the page can follow it.
 */
export async function applyRobotCalibration(db: Db, { actor, input }: { actor: OrgActor; input: z.output<typeof applyCalibrationInput> }) {
  const robot = await findRobot(db, actor, input.robotId);
  if (input.writeMotors && !robot.port) throw new AppError("BAD_REQUEST", `${robot.name} has no port yet: find its port first (the wizard's first step)`);
  const saved = await recordCalibration(db, actor, robot, input.calibration, input.source, input.note ?? null);
  const command = await sendAgentCommand(db, {
    actor,
    input: {
      agentId: robot.agentId,
      kind: "calibration.write",
      input: { file: robotCalibrationFile(robot), calibration: inMotorOrder(input.calibration), ...(input.writeMotors ? { port: robot.port, protocol: robot.protocol } : {}) },
      timeoutSeconds: 60,
    },
  });
  return { calibration: toCalibrationDto(saved), command };
}

/** LeRobot's file, byte for byte, for a calibration in the arm's history (the current one by default). */
export async function exportRobotCalibration(db: Db, { actor, robotId, calibrationId }: { actor: OrgActor; robotId: string; calibrationId?: string }) {
  const robot = await findRobot(db, actor, robotId);
  const row = await db.robotCalibration.findFirst({ where: { robotId: robot.id, orgId: actor.orgId, ...(calibrationId ? { id: calibrationId } : {}) }, orderBy: { createdAt: "desc" } });
  if (!row) throw new AppError("NOT_FOUND", `${robot.name} has no calibration yet`);
  const file = robotCalibrationFile(robot);
  return { fileName: `${file.id}.json`, text: formatCalibration(inMotorOrder(CalibrationSchema.parse(row.calibration))) };
}
