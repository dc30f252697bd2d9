// The agent's motor commands, run through the registry as the connection runs them, against the
// pty simulator. The simulator follows the baud the handlers set on their end of the pty: the
// handlers open the port themselves, as they do on the robot's computer.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { z } from "zod";
import { commandResultSchemas, type commandInputSchemas, type JointSample } from "../../server/hardware/hardware.schemas";
import { MotorBusSim, type MotorBusSimOptions } from "../../tests/helpers/motor-bus-sim";
import { CommandRegistry, type CommandContext } from "../commands";
import type { HardwareCommandKind } from "./bus-session";
import { formatCalibration, type Calibration } from "./calibration";
import { registerHardwareCommands } from "./commands";
import { X_CONTROL_TABLE } from "./dynamixel";
import { STS_CONTROL_TABLE } from "./feetech";
import { MotorBus } from "./motor-bus";

const SO101 = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"].map((name, i) => ({ name, id: i + 1 }));

const sims: MotorBusSim[] = [];
async function startSim(options: Omit<MotorBusSimOptions, "followHostBaud">): Promise<MotorBusSim> {
  const sim = await MotorBusSim.start({ ...options, followHostBaud: true });
  sims.push(sim);
  return sim;
}

const calibrationRoot = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-calibration-"));
const savedCalibrationEnv = process.env.HF_LEROBOT_CALIBRATION;
process.env.HF_LEROBOT_CALIBRATION = calibrationRoot;

afterAll(async () => {
  for (const sim of sims) await sim.stop();
  fs.rmSync(calibrationRoot, { recursive: true, force: true });
  if (savedCalibrationEnv === undefined) delete process.env.HF_LEROBOT_CALIBRATION;
  else process.env.HF_LEROBOT_CALIBRATION = savedCalibrationEnv;
});

function context(signal: AbortSignal = AbortSignal.timeout(60_000)) {
  const samples: JointSample[] = [];
  const steps: { progress: number | null; step: string | null }[] = [];
  const ctx: CommandContext = { progress: (progress, step) => steps.push({ progress, step }), emit: (sample) => samples.push(sample), log: () => {}, signal };
  return { ctx, samples, steps };
}

/** Calls `then` once, when the command emits its first sample: the bus is open and has been read. */
function afterFirstSample(ctx: CommandContext, then: () => void): void {
  const emit = ctx.emit;
  let isFirst = true;
  ctx.emit = (sample) => {
    emit(sample);
    if (!isFirst) return;
    isFirst = false;
    then();
  };
}

let registry: CommandRegistry;
let portsDir: string;

/** Runs a command as the connection does, and checks its answer against the schema the pages parse. */
async function run<K extends HardwareCommandKind>(kind: K, input: z.input<(typeof commandInputSchemas)[K]>, ctx = context().ctx): Promise<z.output<(typeof commandResultSchemas)[K]>> {
  const result = await registry.run(kind, input, ctx);
  return (commandResultSchemas[kind] as z.ZodType).parse(result) as z.output<(typeof commandResultSchemas)[K]>;
}

/** What the motors read now, through a bus of the test's own (the handlers have closed theirs). */
async function readPositions(sim: MotorBusSim, ids: number[]): Promise<number[]> {
  const bus = await MotorBus.open(sim.hostPath, { protocol: sim.protocol, timeoutMs: 200 });
  try {
    return [...(await bus.syncReadPositions(ids)).values()];
  } finally {
    await bus.close();
  }
}

describe("an SO-101 arm (six STS3215)", () => {
  let sim: MotorBusSim;
  const bus = () => ({ port: sim.hostPath, protocol: "feetech" as const });

  beforeAll(async () => {
    sim = await startSim({ protocol: "feetech" });
    portsDir = sim.dir;
    registry = registerHardwareCommands(new CommandRegistry(), { portsDir });
  });
  afterEach(() => {
    for (const m of sim.motors) Object.assign(m, { silent: false, badChecksum: false, voltage: 121 });
  });

  it("lists the ports in its folder", async () => {
    const { ports, dir } = await run("ports.list", {});
    expect(dir).toBe(portsDir);
    expect(ports).toEqual([expect.objectContaining({ path: sim.hostPath, device: expect.stringMatching(/^\/dev\/pts\/\d+$/), byId: null })]);
  });

  it("scans the bus, reporting progress per baud", async () => {
    const { ctx, steps } = context();
    const result = await run("motors.scan", { ...bus(), bauds: [57_600, 1_000_000], ids: { from: 0, to: 10 } }, ctx);
    expect(result.found).toEqual(SO101.map(({ id }) => ({ id, baud: 1_000_000, model: 777, modelName: "sts3215" })));
    expect(result.problems).toEqual([]);
    expect(result.bauds).toEqual([57_600, 1_000_000]);
    expect(steps.map((s) => s.progress)).toEqual([0, 0.5, 1]);
    expect(steps.at(-1)!.step).toMatch(/6 motor\(s\) found/);
  });

  it("stops a scan when the agent stops", async () => {
    const stop = new AbortController();
    const running = run("motors.scan", { ...bus(), bauds: [1_000_000] }, context(stop.signal).ctx);
    setTimeout(() => stop.abort(), 200);
    await expect(running).rejects.toThrow(/aborted/);
    // The port was closed: another command opens it at once.
    expect((await run("motors.scan", { ...bus(), bauds: [1_000_000], ids: { from: 1, to: 1 } })).found).toHaveLength(1);
  });

  it("says whether the supply fits the arm's role", async () => {
    const follower = await run("motors.power", { ...bus(), ids: [1, 2, 3, 4, 5, 6, 7], role: "follower" });
    expect(follower.verdict).toBe("ok");
    expect(follower.readings.slice(0, 6)).toEqual(SO101.map(({ id }) => ({ id, volts: 12.1, error: null })));
    expect(follower.readings[6]).toEqual({ id: 7, volts: null, error: expect.stringMatching(/No reply from motor 7/) });
    expect(follower.message).toMatch(/12\.1 V.*Motor\(s\) 7 did not answer/);

    const leaderOnTwelve = await run("motors.power", { ...bus(), ids: [1, 2], role: "leader" });
    expect(leaderOnTwelve).toMatchObject({ verdict: "wrong-supply", message: expect.stringMatching(/12 V on the leader's 7\.4 V motors can damage them: unplug the supply now and use the 5 V one/) });

    for (const m of sim.motors) m.voltage = 50;
    const followerOnFive = await run("motors.power", { ...bus(), ids: [1, 2, 3], role: "follower" });
    expect(followerOnFive).toMatchObject({ verdict: "wrong-supply", message: expect.stringMatching(/5\.0 V — a leader's 5 V supply on the follower: use the 12 V supply that came with the follower's motors/) });
    expect((await run("motors.power", { ...bus(), ids: [1], role: "leader" })).verdict).toBe("ok");

    expect(await run("motors.power", { ...bus(), ids: [9], role: "follower" })).toMatchObject({ verdict: "unknown", message: expect.stringMatching(/No motor answered/) });
  });

  it("homes the arm so every joint reads 2047, and the offsets survive a power cycle", async () => {
    sim.setPositions({ 1: 577, 2: 2200, 3: 3401, 4: 1003, 5: 54, 6: 3454 });
    const { ctx, steps } = context();
    const result = await run("calibration.home", { ...bus(), motors: SO101 }, ctx);
    expect(result.positions).toEqual({ shoulder_pan: 577, shoulder_lift: 2200, elbow_flex: 3401, wrist_flex: 1003, wrist_roll: 54, gripper: 3454 });
    expect(result.homingOffsets).toEqual({ shoulder_pan: -1470, shoulder_lift: 153, elbow_flex: 1354, wrist_flex: -1044, wrist_roll: -1993, gripper: 1407 });
    expect(steps.at(-1)).toEqual({ progress: 1, step: "homed" });
    expect(await readPositions(sim, [1, 2, 3, 4, 5, 6])).toEqual([2047, 2047, 2047, 2047, 2047, 2047]);
    sim.powerCycle();
    expect(await readPositions(sim, [1, 2, 3, 4, 5, 6])).toEqual([2047, 2047, 2047, 2047, 2047, 2047]);
    expect(sim.motors.map((m) => m.mem[STS_CONTROL_TABLE.Lock.address])).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it("refuses to home a joint at the end of its travel, naming it", async () => {
    sim.setPositions({ 1: 2000, 2: 2000, 3: 4095, 4: 2000, 5: 2000, 6: 2000 });
    await expect(run("calibration.home", { ...bus(), motors: SO101 })).rejects.toThrow(/elbow_flex reads 4095.*Move that joint to the middle of its range/);
  });

  it("records the range of motion while a person moves the arm, streaming samples", async () => {
    for (const m of sim.motors) m.put(STS_CONTROL_TABLE.Homing_Offset.address, 2, 0);
    sim.setPositions({ 1: 2000, 2: 2000, 3: 2000, 4: 2000, 5: 2000, 6: 2000 });
    const { ctx, samples } = context();
    // The person moves the arm once the recording has read where it starts (however long the
    // bus took to open), then again.
    const moves: ReturnType<typeof setTimeout>[] = [];
    afterFirstSample(ctx, () =>
      moves.push(
        setTimeout(() => sim.setPositions({ 1: 1000, 2: 900, 3: 3000, 4: 1500, 5: 100, 6: 2100 }), 100),
        setTimeout(() => sim.setPositions({ 1: 3000, 2: 3100, 3: 800, 4: 2500, 5: 4000, 6: 3300 }), 400),
      ),
    );
    try {
      const result = await run("calibration.range", { ...bus(), motors: SO101, durationMs: 1000, hz: 50 }, ctx);
      expect(result.ranges).toEqual({
        shoulder_pan: { min: 1000, max: 3000 },
        shoulder_lift: { min: 900, max: 3100 },
        elbow_flex: { min: 800, max: 3000 },
        wrist_flex: { min: 1500, max: 2500 },
        wrist_roll: { min: 100, max: 4000 },
        gripper: { min: 2000, max: 3300 },
      });
      expect(result.samples).toBe(samples.length);
      expect(samples.every((s) => s.raw.length === 6 && s.values === null)).toBe(true);
    } finally {
      moves.forEach(clearTimeout);
    }
  });

  it("refuses a range where a joint did not move", async () => {
    const { ctx } = context();
    let moving: ReturnType<typeof setTimeout> | undefined;
    afterFirstSample(ctx, () => (moving = setTimeout(() => sim.setPositions({ 1: 1500, 2: 1500, 3: 1500, 4: 1500, 6: 1500 }), 100)));
    await expect(run("calibration.range", { ...bus(), motors: SO101, durationMs: 1000, hz: 20 }, ctx)).rejects.toThrow(/^wrist_roll did not move: move every joint through its whole range$/);
    clearTimeout(moving);
  });

  it("ends a range recording at the command's deadline with what it has, and throws when the agent stops", async () => {
    sim.setPositions({ 1: 2000, 2: 2000, 3: 2000, 4: 2000, 5: 2000, 6: 2000 });
    // The deadline passes a second after the recording started reading (as a deadline's timeout aborts).
    const deadline = new AbortController();
    const timers: ReturnType<typeof setTimeout>[] = [];
    const recording = context(deadline.signal);
    afterFirstSample(recording.ctx, () =>
      timers.push(
        setTimeout(() => sim.setPositions({ 1: 2100, 2: 2100, 3: 2100, 4: 2100, 5: 2100, 6: 2100 }), 100),
        setTimeout(() => deadline.abort(new DOMException("The operation timed out.", "TimeoutError")), 1000),
      ),
    );
    const atDeadline = await run("calibration.range", { ...bus(), motors: SO101, durationMs: 20_000, hz: 50 }, recording.ctx);
    timers.forEach(clearTimeout);
    expect(atDeadline.samples).toBeGreaterThan(1);

    const stop = new AbortController();
    const stopped = context(stop.signal);
    afterFirstSample(stopped.ctx, () => timers.push(setTimeout(() => stop.abort(), 100)));
    await expect(run("calibration.range", { ...bus(), motors: SO101, durationMs: 20_000, hz: 50 }, stopped.ctx)).rejects.toThrow(/aborted/);
    timers.forEach(clearTimeout);
  });

  describe("LeRobot's calibration file and the motors' EEPROM", () => {
    const file = { kind: "robots" as const, type: "so101_follower", id: "bench_arm" };
    const calibration: Calibration = Object.fromEntries(SO101.map(({ name, id }) => [name, { id, drive_mode: 0, homing_offset: -100 * id, range_min: 500 + id, range_max: 3500 - id }]));

    it("reads no file as not calibrated yet", async () => {
      expect(await run("calibration.read", { file: { ...file, id: "never_calibrated" } })).toEqual({ path: path.join(calibrationRoot, "robots", "so101_follower", "never_calibrated.json"), calibration: null, text: null, drift: null });
    });

    it("writes the file and the motors, and reads both back with no drift, also after a power cycle", async () => {
      const written = await run("calibration.write", { file, calibration, ...bus() });
      const filePath = path.join(calibrationRoot, "robots", "so101_follower", "bench_arm.json");
      expect(written).toEqual({ path: filePath, bytes: fs.statSync(filePath).size, wroteMotors: true });
      expect(fs.readFileSync(filePath, "utf8")).toBe(formatCalibration(calibration));
      sim.powerCycle();
      expect(await run("calibration.read", { file, ...bus() })).toEqual({ path: filePath, calibration, text: formatCalibration(calibration), drift: [] });
      expect(await run("calibration.read", { file })).toMatchObject({ calibration, drift: null });
    });

    it("names every field where a motor's EEPROM and the file disagree", async () => {
      sim.motor(3).put(STS_CONTROL_TABLE.Min_Position_Limit.address, 2, 100);
      sim.motor(5).silent = true;
      const { drift } = await run("calibration.read", { file, ...bus() });
      expect(drift).toEqual([
        { motor: "elbow_flex", field: "range_min", file: 503, motorValue: 100 },
        { motor: "wrist_roll", field: "homing_offset", file: -500, motorValue: null },
        { motor: "wrist_roll", field: "range_min", file: 505, motorValue: null },
        { motor: "wrist_roll", field: "range_max", file: 3495, motorValue: null },
      ]);
    });

    it("writes the file alone without a port, and refuses a port without its protocol", async () => {
      expect(await run("calibration.write", { file: { ...file, id: "file_only" }, calibration })).toMatchObject({ wroteMotors: false });
      await expect(run("calibration.read", { file, port: sim.hostPath })).rejects.toThrow(/needs both port and protocol/);
    });
  });

  it("streams joint readings in LeRobot's units at the rate asked, never faster", async () => {
    for (const m of sim.motors) m.put(STS_CONTROL_TABLE.Homing_Offset.address, 2, 0);
    sim.setPositions({ 1: 1000, 2: 2000, 3: 3000, 4: 1500, 5: 2000, 6: 2500 });
    const calibration: Calibration = Object.fromEntries(SO101.map(({ name, id }) => [name, { id, drive_mode: name === "wrist_flex" ? 1 : 0, homing_offset: 0, range_min: 1000, range_max: 3000 }]));
    const { ctx, samples } = context();
    const result = await run("joints.stream", { ...bus(), motors: SO101, calibration, hz: 50, durationMs: 1000 }, ctx);
    expect(result.samples).toBe(samples.length);
    expect(result.samples).toBeGreaterThan(0);
    expect(result.hz).toBeGreaterThan(0);
    expect(result.hz).toBeLessThanOrEqual(50 * 1.05);
    // wrist_flex runs the other way (drive_mode 1): a quarter of its range reads +50, not −50.
    expect(samples[0]).toEqual({ t: expect.any(Number), raw: [1000, 2000, 3000, 1500, 2000, 2500], values: [-100, 0, 100, 50, 0, 75] });
    expect(samples.every((s, i) => i === 0 || s.t >= samples[i - 1]!.t)).toBe(true);
  });

  it("streams raw readings without a calibration, and fails with the bus's message when a motor stops answering", async () => {
    const { ctx, samples } = context();
    let stopping: ReturnType<typeof setTimeout> | undefined;
    afterFirstSample(ctx, () => (stopping = setTimeout(() => (sim.motor(4).silent = true), 100)));
    await expect(run("joints.stream", { ...bus(), motors: SO101, hz: 20, durationMs: 5000 }, ctx)).rejects.toThrow(/Sync read of Present_Position on .*: no reply from motor\(s\) 4 within 200 ms/);
    clearTimeout(stopping);
    expect(samples.length).toBeGreaterThan(0);
    expect(samples[0]!.values).toBeNull();
  });

  it("explains a port that does not exist", async () => {
    await expect(run("motors.scan", { port: "/nonexistent-gantry/ttyUSB9", protocol: "feetech", bauds: [1_000_000] })).rejects.toThrow(/^Cannot open \/nonexistent-gantry\/ttyUSB9: it does not exist\./);
    await expect(run("calibration.home", { port: "/nonexistent-gantry/ttyUSB9", protocol: "feetech", motors: SO101 })).rejects.toThrow(/^Cannot open \/nonexistent-gantry\/ttyUSB9/);
  });
});

describe("a Koch arm (six XL330 at 1 Mbaud)", () => {
  beforeAll(() => {
    registry ??= registerHardwareCommands(new CommandRegistry());
  });

  it("homes it as LeRobot homes Dynamixel motors: offset = 2047 − position, which the motor adds", async () => {
    const sim = await startSim({ protocol: "dynamixel", motors: SO101.map(({ id }) => ({ id, baud: 1_000_000, position: 1000 * id - 500 })) });
    const result = await run("calibration.home", { port: sim.hostPath, protocol: "dynamixel", motors: SO101 });
    expect(result.homingOffsets).toEqual(Object.fromEntries(SO101.map(({ name, id }) => [name, 2047 - (1000 * id - 500)])));
    expect(await readPositions(sim, [1, 2, 3, 4, 5, 6])).toEqual([2047, 2047, 2047, 2047, 2047, 2047]);
  });

  it("homes a Koch leader as LeRobot's koch_leader does: extended position mode, elbow_flex Drive_Mode INVERTED, offsets read after", async () => {
    const sim = await startSim({ protocol: "dynamixel", motors: SO101.map(({ id }) => ({ id, baud: 1_000_000, position: 1000 * id - 500 })) });
    const result = await run("calibration.home", { port: sim.hostPath, protocol: "dynamixel", motors: SO101, inverted: ["elbow_flex"] });
    expect(SO101.map(({ id }) => sim.motor(id).get(X_CONTROL_TABLE.Drive_Mode.address, 1))).toEqual([0, 0, 1, 0, 0, 0]);
    expect(SO101.map(({ id }) => sim.motor(id).get(X_CONTROL_TABLE.Operating_Mode.address, 1))).toEqual([4, 4, 4, 4, 4, 4]);
    expect(result.driveModes).toEqual({ shoulder_pan: 0, shoulder_lift: 0, elbow_flex: 1, wrist_flex: 0, wrist_roll: 0, gripper: 0 });
    // The inverted motor reports its position reversed; the offset brings it to 2047 all the same.
    expect(result.positions.elbow_flex).toBe(-2500);
    expect(result.homingOffsets.elbow_flex).toBe(2047 + 2500);
    expect(await readPositions(sim, [1, 2, 3, 4, 5, 6])).toEqual([2047, 2047, 2047, 2047, 2047, 2047]);

    // LeRobot's file for it, and the motors' Drive_Mode compared with it (read_calibration reads it on Dynamixel).
    const calibration: Calibration = Object.fromEntries(SO101.map(({ name, id }) => [name, { id, drive_mode: result.driveModes![name]!, homing_offset: result.homingOffsets[name]!, range_min: 0, range_max: 4095 }]));
    const file = { kind: "teleoperators" as const, type: "koch_leader", id: "koch_leader_drive" };
    await run("calibration.write", { file, calibration, port: sim.hostPath, protocol: "dynamixel" });
    expect((await run("calibration.read", { file, port: sim.hostPath, protocol: "dynamixel" })).drift).toEqual([]);
    sim.motor(3).put(X_CONTROL_TABLE.Drive_Mode.address, 1, 0);
    expect((await run("calibration.read", { file, port: sim.hostPath, protocol: "dynamixel" })).drift).toEqual([{ motor: "elbow_flex", field: "drive_mode", file: 1, motorValue: 0 }]);
    // Writing the file's calibration puts the motor's direction back.
    await run("calibration.write", { file, calibration, port: sim.hostPath, protocol: "dynamixel" });
    expect(sim.motor(3).get(X_CONTROL_TABLE.Drive_Mode.address, 1)).toBe(1);
  });

  it("streams a Koch joint with drive_mode 1 as the motor reports it: the Dynamixel bus does not reverse it again", async () => {
    const sim = await startSim({ protocol: "dynamixel", motors: SO101.map(({ id }) => ({ id, baud: 1_000_000, position: 1500 })) });
    // elbow_flex inverted in the motor, homed so the middle pose reads 2047.
    sim.motor(3).put(X_CONTROL_TABLE.Drive_Mode.address, 1, 1);
    sim.motor(3).put(X_CONTROL_TABLE.Homing_Offset.address, 4, 3500);
    const calibration: Calibration = Object.fromEntries(SO101.map(({ name, id }) => [name, { id, drive_mode: name === "elbow_flex" ? 1 : 0, homing_offset: 0, range_min: 1000, range_max: 3000 }]));
    const { ctx, samples } = context();
    await run("joints.stream", { port: sim.hostPath, protocol: "dynamixel", motors: SO101, calibration, hz: 20, durationMs: 1000 }, ctx);
    // The motor reads 3500 − 1500 = 2000 (the middle of its range): 0, not reversed to 0 — and at
    // 1500 the others read −50, as LeRobot's Dynamixel bus gives them.
    expect(samples[0]).toEqual({ t: expect.any(Number), raw: [1500, 1500, 2000, 1500, 1500, 1500], values: [-50, -50, 0, -50, -50, 25] });
    sim.setPositions({ 3: 1000 });
    const later = context();
    await run("joints.stream", { port: sim.hostPath, protocol: "dynamixel", motors: SO101, calibration, hz: 20, durationMs: 1000 }, later.ctx);
    // Moved the motor's way by 500: the reading went up by 500 (the motor reversed it), +50 in LeRobot's units.
    expect(later.samples[0]!.values![2]).toBe(50);
  });
});

describe("motor set-up (one motor on the bus)", () => {
  beforeAll(() => {
    registry ??= registerHardwareCommands(new CommandRegistry());
  });

  it("gives a factory motor (id 1 at 1 Mbaud) id 6; running it again changes nothing", async () => {
    const sim = await startSim({ protocol: "feetech", motors: [{ id: 1 }] });
    const { ctx, steps } = context();
    const result = await run("motors.setup", { port: sim.hostPath, protocol: "feetech", motor: "gripper", id: 6 }, ctx);
    expect(result).toEqual({ motor: "gripper", id: 6, baud: 1_000_000, model: 777, modelName: "sts3215", was: { id: 1, baud: 1_000_000 } });
    expect(steps.at(-1)).toEqual({ progress: 1, step: "the gripper motor is id 6 at 1000000 baud" });
    sim.powerCycle();
    expect(sim.motors[0]!.id).toBe(6);
    expect(await run("motors.setup", { port: sim.hostPath, protocol: "feetech", motor: "gripper", id: 6 })).toMatchObject({ id: 6, baud: 1_000_000, was: { id: 6, baud: 1_000_000 } });
  });

  it("finds a Koch motor at its factory 57600 baud and moves it to id 4 at 1 Mbaud", async () => {
    const sim = await startSim({ protocol: "dynamixel", motors: [{ id: 1 }] });
    const result = await run("motors.setup", { port: sim.hostPath, protocol: "dynamixel", motor: "wrist_flex", id: 4, baud: 1_000_000 });
    expect(result).toEqual({ motor: "wrist_flex", id: 4, baud: 1_000_000, model: 1200, modelName: "xl330-m288", was: { id: 1, baud: 57_600 } });
    sim.powerCycle();
    expect(sim.motor(4).baud).toBe(1_000_000);
  });

  it("refuses two motors, naming their ids and bauds", async () => {
    const sim = await startSim({ protocol: "feetech", motors: [{ id: 1 }, { id: 2 }] });
    await expect(run("motors.setup", { port: sim.hostPath, protocol: "feetech", motor: "shoulder_pan", id: 1 })).rejects.toThrow(`2 motors answer on ${sim.hostPath} (id 1 at 1000000 baud, id 2 at 1000000 baud): disconnect all but the shoulder_pan motor and try again`);
    expect(sim.motors.map((m) => [m.id, m.baud])).toEqual([[1, 1_000_000], [2, 1_000_000]]);
  });

  it("explains two motors on one id, and no motor at all", async () => {
    const twins = await startSim({ protocol: "feetech", motors: [{ id: 1 }, { id: 1 }] });
    await expect(run("motors.setup", { port: twins.hostPath, protocol: "feetech", motor: "elbow_flex", id: 3 })).rejects.toThrow(/More than one motor answers as id 1 .* at 1000000 baud.*Connect only the elbow_flex motor's 3-pin cable/);
    const empty = await startSim({ protocol: "feetech", motors: [] });
    await expect(run("motors.setup", { port: empty.hostPath, protocol: "feetech", motor: "elbow_flex", id: 3 })).rejects.toThrow(`No motor answers on ${empty.hostPath} at any baud: connect only the elbow_flex motor's 3-pin cable to the bus board and check the power supply`);
  });
});
