import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import type { OrgActor } from "../auth/roles";
import { createApiToken } from "../auth/tokens.service";
import { RealtimeHub } from "../jobs/realtime";
import { recordAgentMessage } from "../hardware/agent-session.service";
import { openJointSampleStream, type JointSampleEvent } from "../hardware/joint-stream";
import { applyRobotCalibration, createRobot } from "../hardware/robots.service";
import os from "node:os";
import path from "node:path";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { createCaptureInput } from "./captures.schemas";
import { getLatestJointState } from "./joints.service";
import type { CaptureLimits } from "./limits";
import { recordLiveJointSamples, startSessionLiveJoints, stopSessionLiveJoints } from "./live-joints.service";
import { createCaptureSession, getCaptureSession, stopCaptureSession } from "./sessions.service";
import { TWIN_LIMITS } from "./twin-pose";

// A capture bound to an arm follows the arm's live joints: a joints.stream command goes to the
// arm's agent, its readings reach a subscriber through the hardware stream (NOTIFY), and the
// same readings are stored as the session's joint states in the twin's radians.

const db = testDb();
const limits: CaptureLimits = { maxFrameBytes: 1024 * 1024, framesPerSecond: 1000, jointStatesPerSecond: 1000, maxSnapshotBytes: 16 * 1024 ** 2, maxSnapshots: 50, trainerSilentMs: 30_000 };
const hub = new RealtimeHub({ url: process.env.DATABASE_URL!, db, jobEvents: false });
const motors = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"];
// Each joint's range centred on 2048, ±1024 counts (90°): −100 is −90°, +100 is +90°.
const calibration = Object.fromEntries(motors.map((name, i) => [name, { id: i + 1, drive_mode: 0, homing_offset: 0, range_min: 1024, range_max: 3072 }]));
let actor: OrgActor;
let agentActor: OrgActor;
let other: OrgActor;
let agentId: string;

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "owner")).owner;
  other = (await createOrgWithMember(db, "owner")).owner;
  const token = await createApiToken(db, { actor, input: { name: "arm computer", scopes: ["read", "write"] } });
  agentId = (await db.agent.create({ data: { orgId: actor.orgId, name: `arm-pc-${Date.now()}`, tokenId: token.id } })).id;
  agentActor = { ...actor, tokenId: token.id };
  await hub.ensureConnected();
});
afterAll(() => hub.stop());

async function boundSession(name: string, { isCalibrated = true } = {}) {
  const robot = await createRobot(db, { actor, input: { agentId, name: `arm_${name}_${Date.now()}`, type: "so101_follower", port: "/dev/ttyACM0" } });
  if (isCalibrated) await applyRobotCalibration(db, { actor, input: { robotId: robot.id, calibration, source: "wizard", writeMotors: false } });
  await db.captureSession.updateMany({ where: { orgId: actor.orgId, status: "active" }, data: { status: "stopped" } });
  const session = await createCaptureSession(db, { actor, input: createCaptureInput.parse({ name, robotId: robot.id }), limits });
  return { robot, session };
}

const sample = (t: number, values: number[]) => ({ t, raw: values.map(() => 2048), values });

describe("a capture following its arm", () => {
  it("starts the arm's live joints on its agent, streams them to a page and stores them in radians", async () => {
    const { robot, session } = await boundSession("Follow");
    const live = await startSessionLiveJoints(db, { actor, sessionId: session.id });
    const command = await db.agentCommand.findUniqueOrThrow({ where: { id: live.commandId } });
    expect(command).toMatchObject({ agentId, kind: "joints.stream", status: "queued" });
    expect(command.input).toMatchObject({ port: "/dev/ttyACM0", protocol: "feetech", motors: robot.motors, calibration: { shoulder_pan: { range_min: 1024 } } });
    // Starting again while it runs keeps the same stream.
    expect((await startSessionLiveJoints(db, { actor, sessionId: session.id })).commandId).toBe(live.commandId);
    expect((await getCaptureSession(db, { actor, sessionId: session.id, limits })).live).toEqual({ commandId: live.commandId, status: "queued" });

    // A page subscribes to the arm's stream; the agent posts a batch.
    const controller = new AbortController();
    const events = await openJointSampleStream(db, { actor, commandId: live.commandId, hub, signal: controller.signal, statusEveryMs: 200 });
    const first = events.next();
    await db.agentCommand.update({ where: { id: live.commandId }, data: { status: "running" } });
    const t0 = Date.now();
    const batch = [sample(t0, [0, 0, 0, 0, 0, 0]), sample(t0 + 33, [100, -100, 50, 0, 0, 100]), { t: t0 + 40, raw: [1, 2, 3, 4, 5, 6], values: null }];
    const reply = await recordAgentMessage(db, { actor: agentActor, message: { type: "samples", agentId, commandId: live.commandId, samples: batch } });
    expect(reply.accepted).toBe(true);
    const stored = await recordLiveJointSamples(db, { actor: agentActor, commandId: live.commandId, samples: batch });
    const got = (await first).value as JointSampleEvent;
    expect(got).toMatchObject({ type: "samples", samples: batch });
    controller.abort();
    await events.return(undefined);

    // The middle of each range is the URDF's zero; ±100 is ±90° here; the gripper's 0..100 spans its limits.
    expect(stored).toHaveLength(2);
    expect(stored[0]!.angles.slice(0, 5).every((a) => Math.abs(a) < 1e-3)).toBe(true);
    expect(stored[0]!.angles[5]).toBeCloseTo(TWIN_LIMITS.gripper!.lower, 5);
    expect(stored[1]!.angles[0]).toBeCloseTo(Math.PI / 2, 2);
    expect(stored[1]!.angles[1]).toBeCloseTo(-Math.PI / 2, 2);
    expect(stored[1]!.angles[2]).toBeCloseTo(Math.PI / 4, 2);
    expect(stored[1]!.angles[5]).toBeCloseTo(TWIN_LIMITS.gripper!.upper, 5);
    // Kept like posted poses: the latest is the session's.
    const latest = await getLatestJointState(db, { actor, sessionId: session.id });
    expect(latest?.t).toBe(t0 + 33);
    latest!.angles.forEach((a, i) => expect(a).toBeCloseTo(stored[1]!.angles[i]!, 9));
    expect(await db.captureJointState.count({ where: { sessionId: session.id } })).toBe(2);

    // Another organisation's agent cannot write into it, even naming the command.
    expect(await recordLiveJointSamples(db, { actor: other, commandId: live.commandId, samples: batch })).toEqual([]);

    // Stopping the follow cancels the arm's command; its late readings are neither passed on nor kept.
    await stopSessionLiveJoints(db, { actor, sessionId: session.id });
    expect((await db.agentCommand.findUniqueOrThrow({ where: { id: live.commandId } })).status).toBe("cancelled");
    expect((await getCaptureSession(db, { actor, sessionId: session.id, limits })).live).toBeNull();
    expect((await recordAgentMessage(db, { actor: agentActor, message: { type: "samples", agentId, commandId: live.commandId, samples: batch } })).accepted).toBe(false);
    expect(await recordLiveJointSamples(db, { actor: agentActor, commandId: live.commandId, samples: batch })).toEqual([]);
    expect(await stopSessionLiveJoints(db, { actor, sessionId: session.id })).toEqual({ stopped: false });
  });

  it("stopping the capture stops its arm's stream", async () => {
    const { session } = await boundSession("Stop");
    const live = await startSessionLiveJoints(db, { actor, sessionId: session.id });
    await stopCaptureSession(db, { actor, sessionId: session.id, blobs: createLocalBlobStore({ root: path.join(os.tmpdir(), `gantry-live-joints-${process.pid}`) }), limits });
    expect((await db.agentCommand.findUniqueOrThrow({ where: { id: live.commandId } })).status).toBe("cancelled");
    await expect(startSessionLiveJoints(db, { actor, sessionId: session.id })).rejects.toThrow(/is stopped; start it again/);
  });

  it("says what is missing: an arm, its calibration; another organisation's session is not found", async () => {
    const { session } = await boundSession("Uncalibrated", { isCalibrated: false });
    await expect(startSessionLiveJoints(db, { actor, sessionId: session.id })).rejects.toThrow(/is not calibrated; .* calibrate it on its set-up page first/);
    await expect(startSessionLiveJoints(db, { actor: other, sessionId: session.id })).rejects.toThrow(/No such capture session/);
    await expect(stopSessionLiveJoints(db, { actor: other, sessionId: session.id })).rejects.toThrow(/No such capture session/);
    await db.captureSession.update({ where: { id: session.id }, data: { status: "stopped" } });
    const bare = await createCaptureSession(db, { actor, input: createCaptureInput.parse({ name: "No arm" }), limits });
    await expect(startSessionLiveJoints(db, { actor, sessionId: bare.id })).rejects.toThrow(/has no arm bound/);
  });
});
