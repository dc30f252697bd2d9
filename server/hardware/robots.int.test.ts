import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import type { OrgActor } from "../auth/roles";
import { createApiToken } from "../auth/tokens.service";
import { RealtimeHub } from "../jobs/realtime";
import { takeCancelsToSend, publishJointSamples, recordAgentMessage } from "./agent-session.service";
import { cancelAgentCommand, getAgentCommand, removeAgent } from "./commands.service";
import { openJointSampleStream, type JointSampleEvent } from "./joint-stream";
import { applyRobotCalibration, createRobot, deleteRobot, exportRobotCalibration, getRobot, importRobotCalibration, lastRobotChecks, listRobotCalibrations, updateRobot } from "./robots.service";

// Arms, their calibration history, command cancel and the live joint stream, against Postgres.

const db = testDb();
let actor: OrgActor;
let other: OrgActor;
let agentId: string;
const hub = new RealtimeHub({ url: process.env.DATABASE_URL!, db, jobEvents: false });

const motors = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"];
const calibration = Object.fromEntries(motors.map((name, i) => [name, { id: i + 1, drive_mode: 0, homing_offset: 10 * i - 20, range_min: 500 + i, range_max: 3500 - i }]));

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "owner")).owner;
  other = (await createOrgWithMember(db, "owner")).owner;
  agentId = (await db.agent.create({ data: { orgId: actor.orgId, name: `bench-pc-${Date.now()}`, tokenId: null } })).id;
  await hub.ensureConnected();
});
afterAll(async () => {
  await hub.stop();
});

describe("robots", () => {
  it("keeps every calibration, writes the current one through the agent, and exports LeRobot's file", async () => {
    const robot = await createRobot(db, { actor, input: { agentId, name: `arm_${Date.now()}`, type: "so101_follower", port: "/dev/ttyACM0" } });
    expect(robot.motors.map((m) => m.name)).toEqual(motors);
    expect(robot.calibration).toBeNull();
    await expect(createRobot(db, { actor, input: { agentId, name: robot.name, type: "koch_leader", port: null } })).rejects.toThrow(/already exists/);

    // Motors in another order still come out in the arm's order, as LeRobot writes them.
    const shuffled = Object.fromEntries(Object.entries(calibration).reverse());
    const applied = await applyRobotCalibration(db, { actor, input: { robotId: robot.id, calibration: shuffled, source: "wizard", writeMotors: true } });
    expect(applied.command.kind).toBe("calibration.write");
    expect(applied.command.input).toMatchObject({ file: { kind: "robots", type: "so101_follower", id: robot.name }, port: "/dev/ttyACM0", protocol: "feetech" });
    expect(Object.keys(applied.calibration.calibration)).toEqual(motors);

    const exported = await exportRobotCalibration(db, { actor, robotId: robot.id });
    expect(exported.fileName).toBe(`${robot.name}.json`);
    expect(exported.text.startsWith('{\n    "shoulder_pan": {\n        "id": 1,\n        "drive_mode": 0,\n        "homing_offset": -20,')).toBe(true);
    expect(exported.text.endsWith('"range_max": 3495\n    }\n}')).toBe(true);

    const imported = await importRobotCalibration(db, { actor, input: { robotId: robot.id, text: exported.text.replace('"homing_offset": -20', '"homing_offset": -21'), note: "from the lab's laptop" } });
    expect(imported.source).toBe("import");
    expect((await getRobot(db, { actor, robotId: robot.id })).calibration?.calibration.shoulder_pan?.homing_offset).toBe(-21);
    expect((await listRobotCalibrations(db, { actor, robotId: robot.id, limit: 10 })).map((c) => c.source)).toEqual(["import", "wizard"]);
  });

  it("keeps the newest motors scan and supply check made on the arm's port since it was set, for its set-up page", async () => {
    const command = (kind: string, port: string, status: "succeeded" | "failed", result: unknown, at: number, role = "follower") =>
      db.agentCommand.create({ data: { orgId: actor.orgId, agentId, kind, input: { port, protocol: "feetech", ...(kind === "motors.power" ? { role } : {}) }, status, result: result as object, deadline: new Date(at + 60_000), createdBy: "test", createdAt: new Date(at), finishedAt: new Date(at + 1000) } });
    const scan = (ids: number[]) => ({ found: ids.map((id) => ({ id, baud: 1_000_000, model: 777, modelName: "sts3215" })), problems: [], bauds: [1_000_000], tookMs: 40 });
    const power = (verdict: string) => ({ readings: [{ id: 1, volts: verdict === "ok" ? 12.1 : 5, error: null }], verdict, message: verdict });
    // A check made on the port before this arm was put on it was of another arm.
    await command("motors.scan", "/dev/ttyACM3", "succeeded", scan([1, 2, 3]), Date.now() - 120_000);
    const robot = await createRobot(db, { actor, input: { agentId, name: `arm_c_${Date.now()}`, type: "so101_follower", port: "/dev/ttyACM3" } });
    expect(await lastRobotChecks(db, { actor, robotId: robot.id })).toEqual({ scan: null, power: null });
    const after = (await db.robot.findUniqueOrThrow({ where: { id: robot.id } })).portSetAt.getTime() + 1000;
    await command("motors.scan", "/dev/ttyACM3", "succeeded", scan([1, 2]), after);
    await command("motors.scan", "/dev/ttyACM3", "succeeded", scan([1, 2, 3, 4, 5, 6]), after + 1000);
    await command("motors.scan", "/dev/ttyACM3", "failed", null, after + 2000); // did not run to the end
    await command("motors.scan", "/dev/ttyUSB9", "succeeded", scan([]), after + 3000); // another port's arm
    await command("motors.power", "/dev/ttyACM3", "succeeded", power("ok"), after);
    await command("motors.power", "/dev/ttyACM3", "succeeded", power("wrong-supply"), after + 1000, "leader"); // checked for a leader
    const checks = await lastRobotChecks(db, { actor, robotId: robot.id });
    expect(checks.scan?.result.found.map((f) => f.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(checks.scan?.at).toEqual(new Date(after + 2000));
    expect(checks.power?.result.verdict).toBe("ok");
    // Moved to another port: the checks made on the old one no longer say anything about it.
    await updateRobot(db, { actor, input: { robotId: robot.id, port: "/dev/ttyACM7" } });
    expect(await lastRobotChecks(db, { actor, robotId: robot.id })).toEqual({ scan: null, power: null });
    await expect(lastRobotChecks(db, { actor: other, robotId: robot.id })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("refuses a calibration that is not LeRobot's or does not fit the arm, and keeps the history as it was", async () => {
    const robot = await createRobot(db, { actor, input: { agentId, name: `arm_b_${Date.now()}`, type: "so101_follower", port: null } });
    await expect(importRobotCalibration(db, { actor, input: { robotId: robot.id, text: "{not json" } })).rejects.toThrow(/not valid JSON/);
    await expect(importRobotCalibration(db, { actor, input: { robotId: robot.id, text: JSON.stringify({ ...calibration, gripper: { ...calibration.gripper, range_min: 4000, range_max: 100 } }) } })).rejects.toThrow(/range_min 4000 is above range_max 100/);
    const { gripper: _, ...fiveMotors } = calibration;
    await expect(importRobotCalibration(db, { actor, input: { robotId: robot.id, text: JSON.stringify({ ...fiveMotors, claw: calibration.gripper }) } })).rejects.toThrow(/no entry for gripper; claw is not a motor/);
    await expect(importRobotCalibration(db, { actor, input: { robotId: robot.id, text: JSON.stringify({ ...calibration, gripper: { ...calibration.gripper, id: 9 } }) } })).rejects.toThrow(/gripper has id 9 but the arm's gripper is motor 6/);
    // Writing to the motors needs a port.
    await expect(applyRobotCalibration(db, { actor, input: { robotId: robot.id, calibration, source: "wizard", writeMotors: true } })).rejects.toThrow(/no port yet/);
    expect(await listRobotCalibrations(db, { actor, robotId: robot.id, limit: 10 })).toEqual([]);
  });

  it("keeps an agent that still has arms from being removed with them", async () => {
    const agent = await db.agent.create({ data: { orgId: actor.orgId, name: `lab-pc-${Date.now()}` } });
    const robot = await createRobot(db, { actor, input: { agentId: agent.id, name: `arm_d_${Date.now()}`, type: "so101_leader", port: null } });
    await expect(removeAgent(db, { actor, agentId: agent.id })).rejects.toThrow(new RegExp(`has an arm \\(${robot.name}\\) with their calibration history: remove it on the Robots page first`));
    expect(await db.robot.findUnique({ where: { id: robot.id } })).not.toBeNull();
    await deleteRobot(db, { actor, robotId: robot.id });
    await removeAgent(db, { actor, agentId: agent.id });
    expect(await db.agent.findUnique({ where: { id: agent.id } })).toBeNull();
  });

  it("is not seen from another organisation, and a viewer cannot be the one who changes it", async () => {
    const robot = await createRobot(db, { actor, input: { agentId, name: `arm_c_${Date.now()}`, type: "koch_follower", port: null } });
    expect(robot.protocol).toBe("dynamixel");
    await expect(getRobot(db, { actor: other, robotId: robot.id })).rejects.toThrow(/No such arm/);
    await expect(exportRobotCalibration(db, { actor: other, robotId: robot.id })).rejects.toThrow(/No such arm/);
    const viewer = await addMember(db, actor.orgId, "viewer");
    expect((await getRobot(db, { actor: viewer, robotId: robot.id })).name).toBe(robot.name);
  });
});

describe("commands", () => {
  it("a cancelled command is told to the connection that has it, once", async () => {
    const connectionId = crypto.randomUUID();
    await db.agent.update({ where: { id: agentId }, data: { connectionId, lastSeenAt: new Date() } });
    await db.agent.update({ where: { id: agentId }, data: { connectedAt: new Date(Date.now() - 1000) } });
    const row = await db.agentCommand.create({ data: { orgId: actor.orgId, agentId, kind: "joints.stream", input: {}, status: "running", connectionId, sentAt: new Date(), deadline: new Date(Date.now() + 60_000), createdBy: "test" } });
    // Never sent to the agent: nothing to tell it.
    const queued = await db.agentCommand.create({ data: { orgId: actor.orgId, agentId, kind: "ping", input: {}, status: "queued", deadline: new Date(Date.now() + 60_000), createdBy: "test" } });
    await cancelAgentCommand(db, { actor, commandId: queued.id });
    const cancelled = await cancelAgentCommand(db, { actor, commandId: row.id });
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.error).toMatch(/^Cancelled by /);
    expect(await takeCancelsToSend(db, { agentId, connectionId })).toEqual([row.id]);
    expect(await takeCancelsToSend(db, { agentId, connectionId })).toEqual([]);
    // The agent reconnects (the stream that carried the cancel may have been dead): it is told again, once.
    const again = crypto.randomUUID();
    await new Promise((r) => setTimeout(r, 5));
    await db.agent.update({ where: { id: agentId }, data: { connectionId: again, connectedAt: new Date() } });
    expect(await takeCancelsToSend(db, { agentId, connectionId: again })).toEqual([row.id]);
    expect(await takeCancelsToSend(db, { agentId, connectionId: again })).toEqual([]);
    // Its late result changes nothing; an ended command cannot be cancelled again.
    expect((await cancelAgentCommand(db, { actor, commandId: row.id })).status).toBe("cancelled");
    await expect(cancelAgentCommand(db, { actor: other, commandId: row.id })).rejects.toThrow(/No such command/);
  });

  it("streams joint samples to a subscriber while the command runs, then ends with its outcome", async () => {
    const row = await db.agentCommand.create({ data: { orgId: actor.orgId, agentId, kind: "joints.stream", input: {}, status: "running", deadline: new Date(Date.now() + 60_000), createdBy: "test" } });
    const controller = new AbortController();
    const events = await openJointSampleStream(db, { actor, commandId: row.id, hub, signal: controller.signal, statusEveryMs: 200 });
    await expect(openJointSampleStream(db, { actor: other, commandId: row.id, hub, signal: controller.signal })).rejects.toThrow(/No such command/);
    const seen: JointSampleEvent[] = [];
    const reading = (async () => {
      for await (const e of events) seen.push(e);
    })();
    // A batch bigger than one NOTIFY goes out as several, in order.
    const samples = Array.from({ length: 64 }, (_, i) => ({ t: 1_000 + i, raw: Array.from({ length: 32 }, (_, j) => 2000 + i + j), values: Array.from({ length: 32 }, (_, j) => (i * j) / 2048 - 0.123456789) }));
    // The stream listens once it is open: what is published now reaches it.
    await publishJointSamples(db, row.id, samples);
    await waitFor(async () => seen.flatMap((e) => (e.type === "samples" ? e.samples : [])).length === samples.length, { what: "every sample to arrive" });
    await db.agentCommand.update({ where: { id: row.id }, data: { status: "succeeded", finishedAt: new Date() } });
    await reading;
    const got = seen.flatMap((e) => (e.type === "samples" ? e.samples : []));
    expect(got.map((s) => s.t)).toEqual(samples.map((s) => s.t));
    expect(seen.length).toBeGreaterThan(2);
    expect(seen.at(-1)).toMatchObject({ type: "ended", status: "succeeded" });
    expect((await getAgentCommand(db, { actor, commandId: row.id })).status).toBe("succeeded");
    // Samples for a command that has ended are not passed on.
    const token = await createApiToken(db, { actor, input: { name: "agent", scopes: ["read", "write"] } });
    await db.agent.update({ where: { id: agentId }, data: { tokenId: token.id } });
    expect(await recordAgentMessage(db, { actor: { ...actor, tokenId: token.id }, message: { type: "samples", agentId, commandId: row.id, samples: samples.slice(0, 1) } })).toEqual({ accepted: false, status: "succeeded" });
  });
});
