// The motor bus over real ptys: socat between the bus (serialport) and the simulator.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MotorBusSim } from "../../tests/helpers/motor-bus-sim";
import { computeHomingOffsets } from "./calibration";
import { MotorBus, MotorBusError } from "./motor-bus";

const SO101_JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"];

async function rig(options: Parameters<typeof MotorBusSim.start>[0], baud?: number) {
  const sim = await MotorBusSim.start(options);
  // A generous timeout: the whole suite runs on two busy cores; scans keep their short one.
  const bus = await MotorBus.open(sim.hostPath, { protocol: options.protocol, baud: baud ?? sim.lineBaud, onLineBaud: sim.setLineBaud, timeoutMs: 200 });
  return { sim, bus };
}

const rigs: { sim: MotorBusSim; bus: MotorBus }[] = [];
async function track(r: Promise<{ sim: MotorBusSim; bus: MotorBus }>) {
  const got = await r;
  rigs.push(got);
  return got;
}
afterAll(async () => {
  for (const { sim, bus } of rigs) {
    await bus.close();
    await sim.stop();
  }
});

describe("SO-101 bus (six STS3215 at 1 Mbaud)", () => {
  let sim: MotorBusSim;
  let bus: MotorBus;
  beforeAll(async () => {
    ({ sim, bus } = await track(rig({ protocol: "feetech", motors: [1, 2, 3, 4, 5, 6].map((id) => ({ id, position: 2000 + id * 10 })) })));
  });
  afterEach(() => {
    for (const m of sim.motors) Object.assign(m, { badChecksum: false, silent: false, lateByMs: 0 });
  });

  it("pings each motor and reads its model number", async () => {
    for (const id of [1, 2, 3, 4, 5, 6]) expect(await bus.ping(id)).toEqual({ id, model: 777, modelName: "sts3215" });
    expect(await bus.ping(7)).toBeNull();
  });

  it("scans ids 0-252 and finds the six at their baud only", async () => {
    const { found, problems } = await bus.scan({ bauds: [57_600, 1_000_000], timeoutMs: 10 });
    expect(problems).toEqual([]);
    expect(found).toEqual([1, 2, 3, 4, 5, 6].map((id) => ({ id, baud: 1_000_000, model: 777, modelName: "sts3215" })));
    expect(bus.baud).toBe(1_000_000);
  });

  it("still finds a motor whose answer comes after the scan's timeout", async () => {
    sim.motor(3).lateByMs = 25;
    const { found, problems } = await bus.scan({ bauds: [1_000_000], ids: [1, 2, 3, 4, 5, 6, 7], timeoutMs: 10 });
    expect(problems).toEqual([]);
    expect(found.map((m) => m.id)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("sync-reads the positions the simulator holds, and follows the arm moved by hand", async () => {
    expect(Object.fromEntries(await bus.syncReadPositions([1, 2, 3, 4, 5, 6]))).toEqual({ 1: 2010, 2: 2020, 3: 2030, 4: 2040, 5: 2050, 6: 2060 });
    sim.setPositions({ 2: 1024, 5: 3000 });
    const again = await bus.syncReadPositions([2, 5]);
    expect([...again]).toEqual([[2, 1024], [5, 3000]]);
  });

  it("sync-writes a register on several motors at once", async () => {
    await bus.syncWrite("Goal_Position", new Map([[1, 1500], [2, -20], [3, 2500]]));
    expect([await bus.read(1, "Goal_Position"), await bus.read(2, "Goal_Position"), await bus.read(3, "Goal_Position")]).toEqual([1500, -20, 2500]);
  });

  it("reads voltage and temperature", async () => {
    sim.motor(4).voltage = 74;
    expect(await bus.readVoltage(4)).toBe(7.4);
    expect(await bus.readVoltage(1)).toBe(12.1);
    expect(await bus.readTemperature(1)).toBe(31);
  });

  it("says a reply's checksum is wrong, and goes on working after it", async () => {
    sim.motor(3).badChecksum = true;
    const err = await bus.read(3, "Present_Position").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MotorBusError);
    expect(err).toMatchObject({ code: "BAD_REPLY", id: 3, message: expect.stringMatching(/Bad reply from motor 3 .* checksum 0x[0-9a-f]+ should be 0x[0-9a-f]+/) });
    await expect(bus.syncReadPositions([1, 2, 3])).rejects.toThrow(/checksum/);
    sim.motor(3).badChecksum = false;
    expect(await bus.read(3, "Present_Position")).toBe(2030);
  });

  it("states a silent motor as a timeout, naming it", async () => {
    sim.motor(4).silent = true;
    expect(await bus.ping(4)).toBeNull();
    await expect(bus.read(4, "Present_Temperature")).rejects.toMatchObject({ code: "TIMEOUT", message: expect.stringMatching(/No reply from motor 4 on .* at 1000000 baud/) });
    await expect(bus.syncReadPositions([1, 2, 3, 4, 5, 6])).rejects.toThrow(/no reply from motor\(s\) 4 within/);
  });

  it("homes the arm as LeRobot does: offsets so every joint reads 2047", async () => {
    const raw = { 1: 577, 2: 2200, 3: 3401, 4: 1003, 5: 54, 6: 3454 };
    sim.setPositions(raw);
    for (const id of [1, 2, 3, 4, 5, 6]) await bus.write(id, "Homing_Offset", 0);
    const present = await bus.syncReadPositions([1, 2, 3, 4, 5, 6]);
    const offsets = computeHomingOffsets(Object.fromEntries(SO101_JOINTS.map((j, i) => [j, present.get(i + 1)!])));
    expect(offsets).toEqual({ shoulder_pan: -1470, shoulder_lift: 153, elbow_flex: 1354, wrist_flex: -1044, wrist_roll: -1993, gripper: 1407 });
    for (const [i, j] of SO101_JOINTS.entries()) await bus.write(i + 1, "Homing_Offset", offsets[j]!);
    expect([...(await bus.syncReadPositions([1, 2, 3, 4, 5, 6])).values()]).toEqual([2047, 2047, 2047, 2047, 2047, 2047]);
    expect(await bus.read(1, "Homing_Offset")).toBe(-1470);
  });

  it("refuses to home a joint far from mid-range, naming it", async () => {
    sim.setPositions({ 3: 4095 });
    await bus.write(3, "Homing_Offset", 0);
    const present = await bus.syncReadPositions([1, 2, 3, 4, 5, 6]);
    expect(() => computeHomingOffsets(Object.fromEntries(SO101_JOINTS.map((j, i) => [j, present.get(i + 1)!])))).toThrow(/elbow_flex reads 4095/);
    await expect(bus.write(3, "Homing_Offset", 2048)).rejects.toThrow(/at most 2047/);
  });

  it("says when a port is already open in this same process (another of the agent's commands)", async () => {
    const err = await MotorBus.open(sim.hostPath, { protocol: "feetech" }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/this agent is using it for another command/);
  });
});

describe("the simulator", () => {
  it("ends its socat when stopped", async () => {
    const sim = await MotorBusSim.start({ protocol: "feetech" });
    const pid = sim.socatPid!;
    expect(() => process.kill(pid, 0)).not.toThrow();
    await sim.stop();
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
  });

  it("follows the host's baud from its end of the pty, with no callback, and ends its probe when stopped", async () => {
    // 128000 is a rate serialport can only set with BOTHER: the probe must read termios2.
    const sim = await MotorBusSim.start({ protocol: "feetech", motors: [{ id: 1 }, { id: 2, baud: 128_000 }], followHostBaud: true });
    const probe = sim.hostBaudProbePid!;
    const bus = await MotorBus.open(sim.hostPath, { protocol: "feetech", timeoutMs: 200 });
    try {
      const { found, problems } = await bus.scan({ bauds: [128_000, 1_000_000], ids: [0, 1, 2, 3], timeoutMs: 10 });
      expect(problems).toEqual([]);
      expect(found).toEqual([
        { id: 2, baud: 128_000, model: 777, modelName: "sts3215" },
        { id: 1, baud: 1_000_000, model: 777, modelName: "sts3215" },
      ]);
      expect(sim.lineBaud).toBe(1_000_000);
    } finally {
      await bus.close();
      await sim.stop();
    }
    expect(() => process.kill(probe, 0)).toThrow(/ESRCH/);
  });
});

describe("motor set-up", () => {
  it("takes a new motor from its id and baud to id 3 at 1 Mbaud, and it stays so after a power cycle", async () => {
    const { sim, bus } = await track(rig({ protocol: "feetech", motors: [{ id: 1, baud: 115_200 }] }, 1_000_000));
    const { found } = await bus.scan({ bauds: [1_000_000, 115_200], timeoutMs: 10 });
    expect(found).toEqual([{ id: 1, baud: 115_200, model: 777, modelName: "sts3215" }]);
    await bus.setLineBaud(found[0]!.baud);
    await bus.setId(1, 3);
    await bus.setBaud(3, 1_000_000);
    expect(bus.baud).toBe(1_000_000);
    sim.powerCycle();
    expect(await bus.ping(3)).toMatchObject({ id: 3, model: 777 });
    expect(sim.motor(3).baud).toBe(1_000_000);
    expect(sim.motor(3).mem[55]).toBe(1);

    // Without unlocking, an EEPROM write does not survive the power cycle: why setId unlocks.
    await bus.write(3, "ID", 4);
    expect(await bus.ping(4)).not.toBeNull();
    sim.powerCycle();
    expect(await bus.ping(4)).toBeNull();
    expect(await bus.ping(3)).not.toBeNull();
  });

  it("refuses an id another motor has", async () => {
    const { bus } = await track(rig({ protocol: "feetech", motors: [{ id: 1 }, { id: 2 }] }));
    await expect(bus.setId(1, 2)).rejects.toThrow(/Id 2 is already taken/);
  });

  it("finds two motors on one id and explains it", async () => {
    const { bus } = await track(rig({ protocol: "feetech", motors: [{ id: 1 }, { id: 1 }, { id: 2 }] }));
    await expect(bus.ping(1)).rejects.toMatchObject({ code: "DUPLICATE_ID", message: expect.stringMatching(/More than one motor answers as id 1 .* connect the motors one at a time/) });
    const { found, problems } = await bus.scan({ bauds: [1_000_000], timeoutMs: 10 });
    expect(found.map((m) => m.id)).toEqual([2]);
    expect(problems).toEqual([{ id: 1, baud: 1_000_000, reason: expect.stringMatching(/More than one motor answers as id 1/) }]);
  });
});

describe("Koch bus (six XL330 on Dynamixel 2.0 at 57600)", () => {
  let sim: MotorBusSim;
  let bus: MotorBus;
  beforeAll(async () => {
    ({ sim, bus } = await track(rig({ protocol: "dynamixel", motors: [1, 2, 3, 4, 5, 6].map((id) => ({ id, position: 1000 + id })) })));
  });

  it("scans and pings with the model number from the ping reply", async () => {
    const { found } = await bus.scan({ bauds: [57_600, 1_000_000], timeoutMs: 10 });
    expect(found).toEqual([1, 2, 3, 4, 5, 6].map((id) => ({ id, baud: 57_600, model: 1200, modelName: "xl330-m288" })));
  });

  it("sync-reads positions, reads voltage and temperature", async () => {
    expect(Object.fromEntries(await bus.syncReadPositions([1, 2, 3, 4, 5, 6]))).toEqual({ 1: 1001, 2: 1002, 3: 1003, 4: 1004, 5: 1005, 6: 1006 });
    expect(await bus.readVoltage(2)).toBe(5);
    expect(await bus.readTemperature(2)).toBe(29);
  });

  it("reports the motor's access error for an EEPROM write with torque on, and setId turns torque off first", async () => {
    await bus.setTorque(6, true);
    await expect(bus.write(6, "ID", 9)).rejects.toMatchObject({ code: "MOTOR_ERROR", message: expect.stringMatching(/access error/) });
    await bus.setId(6, 9);
    expect(await bus.ping(9)).toMatchObject({ model: 1200 });
    expect(await bus.read(9, "Torque_Enable")).toBe(0);
    await bus.write(9, "Homing_Offset", -1000);
    expect(await bus.read(9, "Present_Position")).toBe(6);
    expect(await bus.read(9, "Homing_Offset")).toBe(-1000);
  });

  it("moves a motor to 1 Mbaud, and the line with it", async () => {
    await bus.setBaud(5, 1_000_000);
    expect(bus.baud).toBe(1_000_000);
    expect(await bus.ping(5)).toMatchObject({ model: 1200 });
    expect(await bus.ping(4)).toBeNull();
    await bus.setLineBaud(57_600);
    expect(await bus.ping(5)).toBeNull();
    expect(await bus.ping(4)).not.toBeNull();
  });

  it("says a CRC is wrong", async () => {
    sim.motor(2).badChecksum = true;
    await expect(bus.read(2, "Present_Position")).rejects.toThrow(/Bad reply from motor 2 .* CRC 0x[0-9a-f]+ should be/);
    sim.motor(2).badChecksum = false;
  });
});
