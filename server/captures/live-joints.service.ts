import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import { recordAudit } from "../audit/audit.service";
import type { OrgActor } from "../auth/roles";
import { CalibrationSchema } from "../hardware/calibration.schemas";
import { recordAgentMessage } from "../hardware/agent-session.service";
import { cancelAgentCommand, sendAgentCommand } from "../hardware/commands.service";
import { IN_FLIGHT_STATUSES, ROBOT_TYPES, robotTypeSchema, type AgentMessage, type JointSample } from "../hardware/hardware.schemas";
import type { jointStateSchema } from "./captures.schemas";
import { findSession, notifySession } from "./captures.queries";
import { twinAngles } from "./twin-pose";

// A session bound to an arm follows the arm's own live joints: the page starts a joints.stream
// command on the arm's agent, whose samples fan out to every page through the hardware stream
// (the twin follows them there) and are stored here as the session's joint states, in the
// URDF's radians, exactly like posted ones — so chunks name the pose nearest each frame either way.

type JointState = z.infer<typeof jointStateSchema>;

/** Readings a second the arm is read at while a capture follows it. */
export const LIVE_JOINTS_HZ = 30;
/** The longest a live stream runs before the page has to start it again (the command's own cap). */
const LIVE_JOINTS_MS = 3_600_000;

export interface LiveJointsDto {
  commandId: string;
  status: string;
}

/** Starts (or, if one is running, keeps) the bound arm's live joints for an active session. */
export async function startSessionLiveJoints(db: Db, { actor, sessionId, hz = LIVE_JOINTS_HZ }: { actor: OrgActor; sessionId: string; hz?: number }): Promise<LiveJointsDto> {
  const session = await findSession(db, actor, sessionId);
  if (session.status !== "active") throw new AppError("CONFLICT", `Capture session "${session.name}" is stopped; start it again before following its arm`);
  if (!session.robotId) throw new AppError("BAD_REQUEST", `Capture session "${session.name}" has no arm bound; create the session with an arm from the Robots page, or post joint angles over HTTP`);
  if (session.liveCommandId) {
    const running = await db.agentCommand.findFirst({ where: { id: session.liveCommandId, status: { in: IN_FLIGHT_STATUSES } }, select: { id: true, status: true } });
    if (running) return { commandId: running.id, status: running.status };
  }
  const robot = await db.robot.findFirst({ where: { id: session.robotId, orgId: actor.orgId }, include: { calibrations: { orderBy: { createdAt: "desc" }, take: 1 } } });
  if (!robot) throw new AppError("NOT_FOUND", "The session's arm has been removed; bind another by creating a new session");
  if (!robot.port) throw new AppError("CONFLICT", `The arm ${robot.name} has no serial port set; find it on the arm's set-up page first`);
  const current = robot.calibrations[0];
  if (!current) throw new AppError("CONFLICT", `The arm ${robot.name} is not calibrated; its joints are read in LeRobot's units, which need a calibration — calibrate it on its set-up page first`);
  const type = robotTypeSchema.parse(robot.type);
  const command = await sendAgentCommand(db, {
    actor,
    input: {
      agentId: robot.agentId,
      kind: "joints.stream",
      input: { port: robot.port, protocol: ROBOT_TYPES[type].protocol, motors: robot.motors, calibration: current.calibration, hz, durationMs: LIVE_JOINTS_MS },
      timeoutSeconds: LIVE_JOINTS_MS / 1000 + 30,
    },
  });
  // Another page may have started one meanwhile: the later start wins and the earlier is cancelled.
  const previous = session.liveCommandId;
  await db.$transaction(async (tx) => {
    await tx.captureSession.update({ where: { id: session.id }, data: { liveCommandId: command.id } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "capture.live.start", target: session.name, data: { sessionId: session.id, robotId: robot.id, commandId: command.id } });
  });
  if (previous) await cancelAgentCommand(db, { actor, commandId: previous }).catch(() => {});
  await notifySession(db, session.id);
  return { commandId: command.id, status: command.status };
}

/** Stops following the arm: its live command is cancelled (the arm's port is freed). Stopping twice changes nothing. */
export async function stopSessionLiveJoints(db: Db, { actor, sessionId }: { actor: OrgActor; sessionId: string }): Promise<{ stopped: boolean }> {
  const session = await findSession(db, actor, sessionId);
  if (!session.liveCommandId) return { stopped: false };
  const commandId = session.liveCommandId;
  const { count } = await db.captureSession.updateMany({ where: { id: session.id, liveCommandId: commandId }, data: { liveCommandId: null } });
  if (!count) return { stopped: false };
  const command = await cancelAgentCommand(db, { actor, commandId }).catch(() => null);
  await recordAudit(db, { orgId: actor.orgId, actor, action: "capture.live.stop", target: session.name, data: { sessionId: session.id, commandId } });
  await notifySession(db, session.id);
  return { stopped: command?.status === "cancelled" };
}

/**
 * An agent's message (recordAgentMessage), and for live readings of a `joints.stream` a capture
 * follows, the same readings stored as the capture's joint states.
 */
export async function recordAgentMessageForCaptures(db: Db, { actor, message }: { actor: OrgActor; message: AgentMessage }): Promise<{ accepted: boolean; status: string }> {
  const { kind, ...reply } = await recordAgentMessage(db, { actor, message });
  if (message.type === "samples" && reply.accepted && kind === "joints.stream") await recordLiveJointSamples(db, { actor, commandId: message.commandId, samples: message.samples });
  return reply;
}

/**
 * Stores an arm's live readings as joint states of the active session following that command
 * (none: nothing happens). Readings come in LeRobot's units and are kept in the twin's radians,
 * converted with the arm's current calibration; a reading missing a joint is skipped.
 */
export async function recordLiveJointSamples(db: Db, { actor, commandId, samples }: { actor: OrgActor; commandId: string; samples: JointSample[] }): Promise<JointState[]> {
  const session = await db.captureSession.findFirst({
    where: { liveCommandId: commandId, orgId: actor.orgId, status: "active" },
    select: { id: true, orgId: true, robot: { select: { type: true, motors: true, calibrations: { orderBy: { createdAt: "desc" }, take: 1, select: { calibration: true } } } } },
  });
  if (!session?.robot) return [];
  const motors = (session.robot.motors as { name: string }[]).map((m) => m.name);
  const parsed = CalibrationSchema.safeParse(session.robot.calibrations[0]?.calibration);
  const calibration = parsed.success ? parsed.data : null;
  const type = robotTypeSchema.safeParse(session.robot.type);
  const protocol = type.success ? ROBOT_TYPES[type.data].protocol : undefined;
  const states: JointState[] = [];
  for (const sample of samples) {
    if (!sample.values) continue;
    const angles = twinAngles(motors, sample.values, { calibration, protocol });
    if (angles) states.push({ t: sample.t, angles });
  }
  if (!states.length) return [];
  await db.captureJointState.createMany({ data: states.map((s) => ({ orgId: session.orgId, sessionId: session.id, takenAt: new Date(s.t), angles: s.angles })) });
  return states;
}

/** The session's live command and its state, for the page; null when it follows none. */
export async function sessionLiveJoints(db: Tx, liveCommandId: string | null): Promise<LiveJointsDto | null> {
  if (!liveCommandId) return null;
  const row = await db.agentCommand.findUnique({ where: { id: liveCommandId }, select: { id: true, status: true } });
  return row ? { commandId: row.id, status: row.status } : null;
}
