import { commandInputSchemas } from "../../server/hardware/hardware.schemas";
import type { CommandRegistry } from "../commands";
import { registerHardware, withBus, isBusError } from "./bus-session";
import { registerCalibrationCommands } from "./calibration-commands";
import { DYNAMIXEL_SCAN_BAUDS, X_BAUD_RATES } from "./dynamixel";
import { FEETECH_SCAN_BAUDS, STS_BAUD_RATES } from "./feetech";
import type { FoundMotor, MotorProtocol, ScanProblem } from "./motor-bus";
import { listSerialPorts } from "./ports";

// The commands the portal's set-up wizard drives the arm's motor bus with: list the ports, scan
// a bus, give a new motor its id and baud, check the power supply; then calibration
// (calibration-commands.ts). Each opens the bus, does its work and closes it again, so between
// commands the port is free for LeRobot.

const SCAN_BAUDS: Record<MotorProtocol, number[]> = { feetech: FEETECH_SCAN_BAUDS, dynamixel: DYNAMIXEL_SCAN_BAUDS };
const BAUD_CODES: Record<MotorProtocol, Record<number, number>> = { feetech: STS_BAUD_RATES, dynamixel: X_BAUD_RATES };

/** What each role's motors run on: the follower's on the 12 V supply, the leader's on 5 V (at most 7.4 V). */
const FOLLOWER_MIN_VOLTS = 9.5;
const LEADER_MAX_VOLTS = 8.5;

export interface HardwareCommandOptions {
  /** Where ports.list looks (default /dev). */
  portsDir?: string;
}

export function registerHardwareCommands(registry: CommandRegistry, { portsDir }: HardwareCommandOptions = {}): CommandRegistry {
  const dir = portsDir ?? "/dev";

  registerHardware(registry, "ports.list", commandInputSchemas["ports.list"], async () => ({ ports: listSerialPorts({ devDir: dir }), dir }));

  registerHardware(registry, "motors.scan", commandInputSchemas["motors.scan"], async ({ port, protocol, bauds = SCAN_BAUDS[protocol], ids }, { progress, signal }) => {
    const started = performance.now();
    const idList = ids ? Array.from({ length: Math.max(0, ids.to - ids.from + 1) }, (_, i) => ids.from + i) : undefined;
    const result = await withBus(port, protocol, signal, async (bus) => {
      let done = 0;
      progress(0, `scanning at ${bauds[0]} baud`);
      return bus.scan({
        bauds,
        ids: idList,
        signal,
        onProgress: (baud, found) => {
          done++;
          progress(done / bauds.length, `${found} motor(s) found; ${done < bauds.length ? `scanning at ${bauds[done]} baud` : `done at ${baud} baud`}`);
        },
      });
    });
    return { ...result, bauds, tookMs: Math.round(performance.now() - started) };
  });

  registerHardware(registry, "motors.setup", commandInputSchemas["motors.setup"], async ({ port, protocol, motor, id, baud }, { progress, signal }) => {
    if (BAUD_CODES[protocol][baud] === undefined) throw new Error(`${protocol} motors do not run at ${baud} baud; pick one of ${Object.keys(BAUD_CODES[protocol]).join(", ")}`);
    return withBus(port, protocol, signal, async (bus) => {
      // LeRobot's setup-motors: the one motor on the bus is found by a broadcast ping, baud by
      // baud until one answers (LeRobot's _find_single_motor). The target baud goes first: new
      // motors come at 1 Mbaud, so the usual set-up takes one ping window, not eleven.
      const bauds = [baud, ...SCAN_BAUDS[protocol].filter((b) => b !== baud)];
      const found: FoundMotor[] = [];
      const problems: ScanProblem[] = [];
      for (const [i, b] of bauds.entries()) {
        signal.throwIfAborted();
        progress(i / (bauds.length + 1), `looking for the ${motor} motor at ${b} baud`);
        await bus.setLineBaud(b);
        const answer = await bus.broadcastPing();
        found.push(...answer.found);
        problems.push(...answer.problems);
        if (found.length || problems.length) break;
      }
      if (problems.length) throw new Error(`Cannot set up the ${motor} motor: ${problems.map((p) => p.reason).join("; ")}. Connect only the ${motor} motor's 3-pin cable to the bus board and try again.`);
      if (found.length === 0) throw new Error(`No motor answers on ${port} at any baud: connect only the ${motor} motor's 3-pin cable to the bus board and check the power supply`);
      if (found.length > 1) throw new Error(`${found.length} motors answer on ${port} (${found.map((m) => `id ${m.id} at ${m.baud} baud`).join(", ")}): disconnect all but the ${motor} motor and try again`);
      const was = found[0]!;
      progress(bauds.length / (bauds.length + 1), `giving the ${motor} motor id ${id} at ${baud} baud`);
      await bus.setLineBaud(was.baud);
      if (was.id !== id) await bus.setId(was.id, id);
      if (was.baud !== baud) await bus.setBaud(id, baud);
      await bus.setLineBaud(baud);
      const now = await bus.ping(id);
      if (!now) throw new Error(`The ${motor} motor was given id ${id} at ${baud} baud but does not answer there on ${port}: check its cable and power, and run the set-up again`);
      progress(1, `the ${motor} motor is id ${id} at ${baud} baud`);
      return { motor, id, baud, model: now.model, modelName: now.modelName, was: { id: was.id, baud: was.baud } };
    });
  });

  registerHardware(registry, "motors.power", commandInputSchemas["motors.power"], async ({ port, protocol, ids, role }, { progress, signal }) => {
    const readings = await withBus(port, protocol, signal, async (bus) => {
      const out: { id: number; volts: number | null; error: string | null }[] = [];
      for (const [i, id] of ids.entries()) {
        signal.throwIfAborted();
        progress(i / ids.length, `reading motor ${id}'s supply voltage`);
        try {
          out.push({ id, volts: await bus.readVoltage(id), error: null });
        } catch (error) {
          if (!isBusError(error)) throw error;
          out.push({ id, volts: null, error: error.message });
        }
      }
      return out;
    });
    return { readings, ...judgeSupply(readings, role, port) };
  });

  registerCalibrationCommands(registry);
  return registry;
}

/** Whether the readings fit the arm's role, and what to do when they do not. */
export function judgeSupply(readings: { id: number; volts: number | null }[], role: "follower" | "leader", port: string): { verdict: "ok" | "wrong-supply" | "unknown"; message: string } {
  const volts = readings.flatMap((r) => (r.volts === null ? [] : [r.volts]));
  const silent = readings.filter((r) => r.volts === null).map((r) => r.id);
  const silentNote = silent.length ? ` Motor(s) ${silent.join(", ")} did not answer: check their cables.` : "";
  if (!volts.length) return { verdict: "unknown", message: `No motor answered on ${port}: check that the supply is plugged into the bus board and switched on, and the 3-pin cables.` };
  const low = Math.min(...volts);
  const high = Math.max(...volts);
  const reads = low === high ? `${low.toFixed(1)} V` : `${low.toFixed(1)}–${high.toFixed(1)} V`;
  if (role === "follower") {
    if (low >= FOLLOWER_MIN_VOLTS) return { verdict: "ok", message: `The follower's motors read ${reads}: the 12 V supply is on.${silentNote}` };
    if (low <= LEADER_MAX_VOLTS) return { verdict: "wrong-supply", message: `The follower's motors read ${reads} — a leader's 5 V supply on the follower: use the 12 V supply that came with the follower's motors.${silentNote}` };
    return { verdict: "wrong-supply", message: `The follower's motors read ${reads}, below the ${FOLLOWER_MIN_VOLTS} V a 12 V supply gives: use the 12 V supply that came with the follower's motors, and check it is plugged in firmly.${silentNote}` };
  }
  if (high <= LEADER_MAX_VOLTS) return { verdict: "ok", message: `The leader's motors read ${reads}: the 5 V supply is on.${silentNote}` };
  return { verdict: "wrong-supply", message: `The leader's motors read ${reads} — 12 V on the leader's 7.4 V motors can damage them: unplug the supply now and use the 5 V one.${silentNote}` };
}
