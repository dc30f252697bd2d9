import fs from "node:fs";
import { commandInputSchemas } from "../../server/hardware/hardware.schemas";
import { normalizeJoints } from "../../server/hardware/joint-units";
import type { CommandRegistry } from "../commands";
import { isBusError, isDeadline, readJointsAt, registerHardware, withBus } from "./bus-session";
import { inMotorOrder } from "../../server/hardware/calibration.schemas";
import { calibrationPath, computeHomingOffsets, formatCalibration, HALF_TURN, parseCalibration, saveCalibration, type Calibration } from "./calibration";
import type { MotorProtocol, RegisterName } from "./motor-bus";

// LeRobot's calibration, step by step from the portal: homing (the arm in its middle pose), the
// range of motion (a person moves every joint while the agent records), writing LeRobot's file
// and the motors' EEPROM, reading both back; and the joint stream the pages draw live.

/** Where each field of LeRobot's calibration lives in a motor. */
const EEPROM_FIELDS = [
  ["homing_offset", "Homing_Offset"],
  ["range_min", "Min_Position_Limit"],
  ["range_max", "Max_Position_Limit"],
] as const satisfies readonly (readonly [keyof Calibration[string], RegisterName])[];

/** The encoder's full range: what LeRobot's reset_calibration puts in the limits before homing. */
const FULL_RANGE = 4095;
/** Dynamixel Operating_Mode 4, LeRobot's OperatingMode.EXTENDED_POSITION. */
const EXTENDED_POSITION = 4;

/** The fields to write and compare: a Dynamixel motor also keeps drive_mode (Drive_Mode), as LeRobot's read_calibration reads it. */
function eepromFields(protocol: MotorProtocol) {
  return protocol === "dynamixel" ? [...EEPROM_FIELDS, ["drive_mode", "Drive_Mode"] as const] : EEPROM_FIELDS;
}

function motorBus(command: string, port: string | undefined, protocol: MotorProtocol | undefined): { port: string; protocol: MotorProtocol } | null {
  if (port === undefined && protocol === undefined) return null;
  if (port === undefined || protocol === undefined) throw new Error(`${command} needs both port and protocol to reach the motors (or neither, for the file alone)`);
  return { port, protocol };
}

export function registerCalibrationCommands(registry: CommandRegistry): void {
  registerHardware(registry, "calibration.home", commandInputSchemas["calibration.home"], async ({ port, protocol, motors, inverted = [] }, { progress, signal }) =>
    withBus(port, protocol, signal, async (bus) => {
      const driveModes = Object.fromEntries(motors.map((m) => [m.name, inverted.includes(m.name) ? 1 : 0]));
      // LeRobot's calibrate() on a Dynamixel arm first puts every motor in extended position mode
      // and sets each one's direction (koch_leader: Drive_Mode INVERTED on elbow_flex), both before
      // homing, since the motor reverses its own reading. Feetech motors have no such register:
      // LeRobot applies their drive_mode in software.
      const modes = (m: { name: string }) => (protocol === "dynamixel" ? { Operating_Mode: EXTENDED_POSITION, Drive_Mode: driveModes[m.name]! } : {});
      // Then its set_half_turn_homings: clear the offsets and limits, read every joint, then the
      // offset that makes each read the middle of the encoder's range.
      for (const [i, m] of motors.entries()) {
        signal.throwIfAborted();
        progress(i / (motors.length * 2), `clearing ${m.name}'s offset and limits`);
        await bus.writeEeprom(m.id, { ...modes(m), Homing_Offset: 0, Min_Position_Limit: 0, Max_Position_Limit: FULL_RANGE });
      }
      const present = await bus.syncReadPositions(motors.map((m) => m.id));
      const positions = Object.fromEntries(motors.map((m) => [m.name, present.get(m.id)!]));
      // Feetech subtracts Homing_Offset from the reading and holds at most ±2047 (computeHomingOffsets
      // refuses beyond); Dynamixel adds it (LeRobot's dynamixel _get_half_turn_homings).
      const homingOffsets = protocol === "feetech" ? computeHomingOffsets(positions) : Object.fromEntries(Object.entries(positions).map(([name, p]) => [name, HALF_TURN - p]));
      for (const [i, m] of motors.entries()) {
        signal.throwIfAborted();
        progress((motors.length + i) / (motors.length * 2), `writing ${m.name}'s homing offset`);
        await bus.writeEeprom(m.id, { Homing_Offset: homingOffsets[m.name]! });
      }
      progress(1, "homed");
      return { positions, homingOffsets, driveModes };
    }),
  );

  registerHardware(registry, "calibration.range", commandInputSchemas["calibration.range"], async ({ port, protocol, motors, durationMs, hz, fullTurn }, { progress, emit, signal }) =>
    withBus(port, protocol, signal, async (bus) => {
      for (const m of motors) await bus.setTorque(m.id, false);
      const ids = motors.map((m) => m.id);
      const min = new Map<number, number>();
      const max = new Map<number, number>();
      const started = Date.now();
      let lastProgress = 0;
      progress(0, "move every joint through its whole range");
      const { samples } = await readJointsAt(bus, ids, { hz, durationMs, signal }, (raw) => {
        const t = Date.now();
        raw.forEach((v, i) => {
          min.set(ids[i]!, Math.min(v, min.get(ids[i]!) ?? v));
          max.set(ids[i]!, Math.max(v, max.get(ids[i]!) ?? v));
        });
        emit({ t, raw, values: null });
        if (t - lastProgress >= 500) {
          lastProgress = t;
          progress(Math.min(1, (t - started) / durationMs), "move every joint through its whole range");
        }
      });
      // A recording cut short by the command's deadline keeps what it has; nothing read is nothing to keep.
      if (!samples) throw new Error(isDeadline(signal) ? "calibration.range read nothing before its deadline: give the command more time than durationMs" : `calibration.range read nothing from ${port}`);
      // A motor that turns all the way round has no range to record: LeRobot gives it the whole turn.
      const ranges = Object.fromEntries(motors.map((m) => [m.name, fullTurn.includes(m.name) ? { min: 0, max: 4095 } : { min: min.get(m.id)!, max: max.get(m.id)! }]));
      const still = motors.filter((m) => !fullTurn.includes(m.name) && ranges[m.name]!.min === ranges[m.name]!.max).map((m) => m.name);
      if (still.length) throw new Error(`${still.join(", ")} did not move: move every joint through its whole range`);
      return { ranges, samples };
    }),
  );

  registerHardware(registry, "calibration.write", commandInputSchemas["calibration.write"], async ({ file, calibration: received, port, protocol }, { progress, signal }) => {
    // The portal's JSON store does not keep key order: LeRobot's file lists the motors in id order.
    const calibration = inMotorOrder(received);
    const bus = motorBus("calibration.write", port, protocol);
    const path = calibrationPath(file);
    progress(0, `saving ${path}`);
    saveCalibration(path, calibration);
    const bytes = Buffer.byteLength(formatCalibration(calibration));
    if (!bus) return { path, bytes, wroteMotors: false };
    await withBus(bus.port, bus.protocol, signal, async (motors) => {
      const entries = Object.entries(calibration);
      for (const [i, [name, c]] of entries.entries()) {
        signal.throwIfAborted();
        progress((i + 1) / (entries.length + 1), `writing ${name}'s offset and limits`);
        try {
          await motors.writeEeprom(c.id, Object.fromEntries(eepromFields(bus.protocol).map(([field, register]) => [register, c[field]])));
        } catch (error) {
          if (!isBusError(error)) throw error;
          throw new Error(`Saved ${path}, but ${name} (id ${c.id}) was not written: ${error.message}. Fix that and write the calibration again.`, { cause: error });
        }
      }
    });
    return { path, bytes, wroteMotors: true };
  });

  registerHardware(registry, "calibration.read", commandInputSchemas["calibration.read"], async ({ file, port, protocol }, { progress, signal }) => {
    const bus = motorBus("calibration.read", port, protocol);
    const path = calibrationPath(file);
    let text: string;
    try {
      text = fs.readFileSync(path, "utf8");
    } catch (error) {
      // Not calibrated yet is an answer, not a failure.
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { path, calibration: null, text: null, drift: null };
      throw error;
    }
    const calibration = parseCalibration(text, path);
    if (!bus) return { path, calibration, text, drift: null };
    const drift = await withBus(bus.port, bus.protocol, signal, async (motors) => {
      const out: { motor: string; field: string; file: number; motorValue: number | null }[] = [];
      const entries = Object.entries(calibration);
      for (const [i, [name, c]] of entries.entries()) {
        signal.throwIfAborted();
        progress(i / entries.length, `reading ${name}'s offset and limits`);
        for (const [field, register] of eepromFields(bus.protocol)) {
          let motorValue: number | null;
          try {
            motorValue = await motors.read(c.id, register);
          } catch (error) {
            if (!isBusError(error)) throw error;
            motorValue = null;
          }
          if (motorValue !== c[field]) out.push({ motor: name, field, file: c[field], motorValue });
        }
      }
      return out;
    });
    return { path, calibration, text, drift };
  });

  registerHardware(registry, "joints.stream", commandInputSchemas["joints.stream"], async ({ port, protocol, motors, calibration, hz, durationMs }, { progress, emit, signal }) =>
    withBus(port, protocol, signal, async (bus) => {
      const names = motors.map((m) => m.name);
      progress(null, `reading ${names.length} joints at ${hz} Hz`);
      return readJointsAt(bus, motors.map((m) => m.id), { hz, durationMs, signal }, (raw) => emit({ t: Date.now(), raw, values: calibration ? normalizeJoints(names, raw, calibration, { protocol }) : null }));
    }),
  );
}
