// The motor bus the agent drives: one serial port, one protocol (Feetech STS for SO-100/SO-101,
// Dynamixel 2.0 for Koch). Every reply is checked (header, length, checksum/CRC, id, error
// byte); a bad reply is a MotorBusError saying what was wrong, a silent motor a TIMEOUT.
import { buildDynamixel, describeDynamixelError, DXL_BROADCAST_ID, DYNAMIXEL_MODELS, DYNAMIXEL_SCAN_BAUDS, parseDynamixel, X_BAUD_RATES, X_CONTROL_TABLE } from "./dynamixel";
import { buildFeetech, describeFeetechError, FEETECH_BROADCAST_ID, FEETECH_MODELS, FEETECH_SCAN_BAUDS, parseFeetech, STS_BAUD_RATES, STS_CONTROL_TABLE } from "./feetech";
import { decodeLE, decodeSignMagnitude, encodeLE, encodeSignMagnitude, type ParseResult, type Register, type StatusPacket } from "./packets";
import { openSerialLink, type SerialLink } from "./serial-link";

export type MotorProtocol = "feetech" | "dynamixel";
export type FeetechRegister = keyof typeof STS_CONTROL_TABLE;
export type DynamixelRegister = keyof typeof X_CONTROL_TABLE;
export type RegisterName = FeetechRegister | DynamixelRegister;

export type MotorBusErrorCode = "TIMEOUT" | "BAD_REPLY" | "MOTOR_ERROR" | "DUPLICATE_ID" | "REFUSED";

export class MotorBusError extends Error {
  constructor(readonly code: MotorBusErrorCode, message: string, readonly id?: number) {
    super(message);
    this.name = "MotorBusError";
  }
}

export type FoundMotor = { id: number; baud: number; model: number; modelName: string | null };
export type ScanProblem = { id: number; baud: number; reason: string };

type ProtocolSpec = {
  table: Record<string, Register>;
  bauds: Record<number, number>;
  scanBauds: number[];
  models: Record<number, string>;
  build: typeof buildFeetech;
  parse: (buf: Buffer) => ParseResult;
  describeError: (error: number) => string;
  voltage: string;
  temperature: string;
  broadcastId: number;
  /** Bytes in a ping's status packet. */
  pingStatusBytes: number;
};

const PROTOCOLS: Record<MotorProtocol, ProtocolSpec> = {
  feetech: { table: STS_CONTROL_TABLE, bauds: STS_BAUD_RATES, scanBauds: FEETECH_SCAN_BAUDS, models: FEETECH_MODELS, build: buildFeetech, parse: parseFeetech, describeError: describeFeetechError, voltage: "Present_Voltage", temperature: "Present_Temperature", broadcastId: FEETECH_BROADCAST_ID, pingStatusBytes: 6 },
  dynamixel: { table: X_CONTROL_TABLE, bauds: X_BAUD_RATES, scanBauds: DYNAMIXEL_SCAN_BAUDS, models: DYNAMIXEL_MODELS, build: buildDynamixel, parse: parseDynamixel, describeError: describeDynamixelError, voltage: "Present_Input_Voltage", temperature: "Present_Temperature", broadcastId: DXL_BROADCAST_ID, pingStatusBytes: 14 },
};

export type MotorBusOptions = {
  protocol: MotorProtocol;
  baud?: number;
  /** How long a single request waits for its reply. */
  timeoutMs?: number;
  /** How long after a reply to listen for a second motor answering on the same id. */
  lingerMs?: number;
  /**
   * Called whenever the bus changes line speed. A pty carries bytes at any speed, so the
   * simulator learns the host's baud through this; real hardware needs nothing here.
   */
  onLineBaud?: (baud: number) => void | Promise<void>;
};

export class MotorBus {
  private readonly spec: ProtocolSpec;
  private readonly timeoutMs: number;
  private readonly lingerMs: number;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly link: SerialLink, readonly protocol: MotorProtocol, private readonly options: MotorBusOptions) {
    this.spec = PROTOCOLS[protocol];
    this.timeoutMs = options.timeoutMs ?? 50;
    this.lingerMs = options.lingerMs ?? 3;
  }

  static async open(path: string, options: MotorBusOptions): Promise<MotorBus> {
    const baud = options.baud ?? 1_000_000;
    const link = await openSerialLink(path, baud);
    await options.onLineBaud?.(baud);
    return new MotorBus(link, options.protocol, options);
  }

  get path(): string {
    return this.link.path;
  }
  get baud(): number {
    return this.link.baud;
  }

  async close(): Promise<void> {
    await this.link.close();
  }

  async setLineBaud(baud: number): Promise<void> {
    await this.link.setBaud(baud);
    await this.options.onLineBaud?.(baud);
  }

  // One request on the wire at a time: the bus is half-duplex and replies carry no request id.
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private where(id: number): string {
    return `motor ${id} on ${this.link.path} at ${this.link.baud} baud`;
  }

  /** Sends one packet and returns the status from `id`, or null on timeout. */
  private async transact(id: number, packet: Buffer, timeoutMs = this.timeoutMs, linger = false, onLate?: (id: number) => void): Promise<StatusPacket | null> {
    for (const p of this.link.discardInput(this.spec.parse)) onLate?.(p.id);
    await this.link.send(packet);
    let deadline = performance.now() + timeoutMs;
    let extended = false;
    for (;;) {
      const r = await this.link.nextPacket(this.spec.parse, deadline);
      if (r.kind === "timeout") {
        // Half a packet at the deadline gets one more timeout to finish: it may be a late
        // answer still arriving, which is not this motor's fault.
        if (r.pending && !extended) {
          extended = true;
          deadline = performance.now() + timeoutMs;
          continue;
        }
        if (r.pending) throw new MotorBusError("BAD_REPLY", `Incomplete reply from ${this.where(id)}: ${r.pending} byte(s) and then silence — a loose cable, a wrong baud, or two motors on one id`, id);
        return null;
      }
      if (r.kind === "bad") throw new MotorBusError("BAD_REPLY", `Bad reply from ${this.where(id)}: ${r.reason}`, id);
      if (r.kind === "incomplete") continue;
      const { packet: status } = r;
      // Input is cleared before each request, so another id's packet is a late answer to an
      // earlier one (a slow USB adapter or a long return delay): skip it, as the SDKs do.
      if (status.id !== id) {
        onLate?.(status.id);
        continue;
      }
      if (linger && (await this.link.anyMoreBytes(performance.now() + this.lingerMs))) {
        // More bytes after the answer: a second motor on this id (a copy, or garbled by the
        // collision), unless they are another motor's late answer.
        const next = await this.link.nextPacket(this.spec.parse, performance.now() + this.lingerMs + timeoutMs);
        if (next.kind === "ok" && next.packet.id !== id) onLate?.(next.packet.id);
        else throw new MotorBusError("DUPLICATE_ID", `More than one motor answers as id ${id} on ${this.link.path} at ${this.link.baud} baud — connect the motors one at a time and give each its own id`, id);
      }
      if (status.error) throw new MotorBusError("MOTOR_ERROR", `${this.where(id)} reports: ${this.spec.describeError(status.error)}`, id);
      return status;
    }
  }

  private async request(id: number, packet: Buffer): Promise<StatusPacket> {
    const status = await this.transact(id, packet);
    if (!status) throw new MotorBusError("TIMEOUT", `No reply from ${this.where(id)} within ${this.timeoutMs} ms — check the power supply, the cable, and the motor's id and baud (scan finds them)`, id);
    return status;
  }

  private register(name: RegisterName): Register {
    const reg = this.spec.table[name];
    if (!reg) throw new MotorBusError("REFUSED", `${this.protocol} motors have no register ${name}`);
    return reg;
  }

  private decode(reg: Register, raw: number): number {
    if (reg.signBit !== undefined) return decodeSignMagnitude(raw, reg.signBit);
    if (reg.signed && raw >= 2 ** (8 * reg.size - 1)) return raw - 2 ** (8 * reg.size);
    return raw;
  }

  private encode(name: string, reg: Register, value: number): number[] {
    if (!Number.isInteger(value)) throw new MotorBusError("REFUSED", `${name} takes an integer, not ${value}`);
    let raw = value;
    if (reg.signBit !== undefined) {
      try {
        raw = encodeSignMagnitude(value, reg.signBit);
      } catch {
        throw new MotorBusError("REFUSED", `${name} = ${value} does not fit: its magnitude is at most ${(1 << reg.signBit) - 1}`);
      }
    } else if (reg.signed) {
      const half = 2 ** (8 * reg.size - 1);
      if (value < -half || value >= half) throw new MotorBusError("REFUSED", `${name} = ${value} does not fit in ${reg.size} bytes`);
      if (value < 0) raw = value + 2 * half;
    } else if (value < 0 || value >= 2 ** (8 * reg.size)) throw new MotorBusError("REFUSED", `${name} = ${value} is outside 0..${2 ** (8 * reg.size) - 1}`);
    return encodeLE(raw, reg.size);
  }

  /** The model number if `id` answers, null if nothing answers before the timeout. */
  ping(id: number, { timeoutMs = this.timeoutMs, onLate }: { timeoutMs?: number; onLate?: (id: number) => void } = {}): Promise<{ id: number; model: number; modelName: string | null } | null> {
    return this.exclusive(async () => {
      const status = await this.transact(id, this.spec.build.ping(id), timeoutMs, true, onLate);
      if (!status) return null;
      let model: number;
      if (this.protocol === "dynamixel") {
        if (status.params.length < 2) throw new MotorBusError("BAD_REPLY", `Ping reply from ${this.where(id)} carries no model number`, id);
        model = decodeLE(status.params, 0, 2);
      } else {
        const reg = STS_CONTROL_TABLE.Model_Number;
        // The motor has answered; its model number gets the bus's usual patience.
        model = decodeLE(await this.readRaw(id, reg.address, reg.size), 0, 2);
      }
      return { id, model, modelName: this.spec.models[model] ?? null };
    });
  }

  private async readRaw(id: number, address: number, size: number, timeoutMs = this.timeoutMs): Promise<Buffer> {
    const status = await this.transact(id, this.spec.build.read(id, address, size), timeoutMs);
    if (!status) throw new MotorBusError("TIMEOUT", `No reply from ${this.where(id)} to a read within ${timeoutMs} ms`, id);
    if (status.params.length !== size) throw new MotorBusError("BAD_REPLY", `${this.where(id)} returned ${status.params.length} byte(s) for a ${size}-byte read at ${address}`, id);
    return status.params;
  }

  /**
   * Every id in `ids` at every baud in `bauds` (LeRobot's scan rates by default), with a short
   * timeout per ping. Garbled replies and duplicate ids are reported, not thrown: a scan is how
   * a person finds out what is wrong with a bus. A motor whose answer came in after its
   * timeout is pinged again with the bus's normal timeout before the next baud.
   */
  async scan({ bauds = this.spec.scanBauds, ids = range(0, 252), timeoutMs = 10, onProgress, signal }: { bauds?: number[]; ids?: number[]; timeoutMs?: number; onProgress?: (baud: number, found: number) => void; signal?: AbortSignal } = {}): Promise<{ found: FoundMotor[]; problems: ScanProblem[] }> {
    const found: FoundMotor[] = [];
    const problems: ScanProblem[] = [];
    const initial = this.link.baud;
    try {
      for (const baud of bauds) {
        await this.setLineBaud(baud);
        const late = new Set<number>();
        const onLate = (lateId: number) => late.add(lateId);
        const probe = async (id: number, ms: number) => {
          try {
            const m = await this.ping(id, { timeoutMs: ms, onLate });
            if (m) found.push({ ...m, baud });
          } catch (err) {
            if (!(err instanceof MotorBusError)) throw err;
            const reason = err.code === "BAD_REPLY" ? `${err.message} (two motors sharing id ${id} answer at once like this)` : err.message;
            problems.push({ id, baud, reason });
          }
        };
        for (const id of ids) {
          signal?.throwIfAborted();
          await probe(id, timeoutMs);
        }
        // Answers to the last pings may still be on their way.
        await this.link.anyMoreBytes(performance.now() + this.timeoutMs);
        for (const p of this.link.discardInput(this.spec.parse)) late.add(p.id);
        const retry = [...late].filter((id) => ids.includes(id) && !found.some((m) => m.id === id && m.baud === baud) && !problems.some((p) => p.id === id && p.baud === baud));
        for (const id of retry.sort((a, b) => a - b)) await probe(id, this.timeoutMs);
        onProgress?.(baud, found.length);
      }
      found.sort((a, b) => a.baud - b.baud || a.id - b.id);
    } finally {
      await this.setLineBaud(initial);
    }
    return { found, problems };
  }

  /**
   * The motors that answer a ping to the broadcast id at the line's baud: LeRobot's
   * broadcast_ping, one request instead of 253, so a set-up can try every baud in seconds. It
   * listens for LeRobot's window (3 ms per id: Dynamixel motors answer in id order), longer as
   * answers come in. A second answer from one id, or bytes that are no packet (two Feetech
   * motors answering at once garble each other), are problems, not errors.
   */
  broadcastPing({ windowMs = 3 * 253 + 16 }: { windowMs?: number } = {}): Promise<{ found: FoundMotor[]; problems: ScanProblem[] }> {
    return this.exclusive(async () => {
      const baud = this.link.baud;
      const packetMs = (this.spec.pingStatusBytes * 10 * 1000) / baud;
      this.link.discardInput();
      await this.link.send(this.spec.build.ping(this.spec.broadcastId));
      const start = performance.now();
      const answers: StatusPacket[] = [];
      const problems: ScanProblem[] = [];
      for (;;) {
        const r = await this.link.nextPacket(this.spec.parse, start + windowMs + (answers.length + 1) * packetMs);
        if (r.kind === "timeout") {
          if (r.pending) problems.push({ id: this.spec.broadcastId, baud, reason: `${r.pending} byte(s) that are not a whole reply to a broadcast ping on ${this.link.path} at ${baud} baud — two motors answering at once, or a loose cable` });
          break;
        }
        if (r.kind === "bad") problems.push({ id: this.spec.broadcastId, baud, reason: `Garbled reply to a broadcast ping on ${this.link.path} at ${baud} baud: ${r.reason} (two motors answering at once garble each other like this)` });
        else if (r.kind === "ok") answers.push(r.packet);
      }
      const found: FoundMotor[] = [];
      for (const id of [...new Set(answers.map((a) => a.id))].sort((a, b) => a - b)) {
        const mine = answers.filter((a) => a.id === id);
        if (mine.length > 1) {
          problems.push({ id, baud, reason: `More than one motor answers as id ${id} on ${this.link.path} at ${baud} baud — connect the motors one at a time and give each its own id` });
          continue;
        }
        let model: number;
        if (this.protocol === "dynamixel") {
          if (mine[0]!.params.length < 2) {
            problems.push({ id, baud, reason: `Ping reply from ${this.where(id)} carries no model number` });
            continue;
          }
          model = decodeLE(mine[0]!.params, 0, 2);
        } else {
          const reg = STS_CONTROL_TABLE.Model_Number;
          try {
            model = decodeLE(await this.readRaw(id, reg.address, reg.size), 0, 2);
          } catch (err) {
            if (!(err instanceof MotorBusError)) throw err;
            problems.push({ id, baud, reason: err.message });
            continue;
          }
        }
        found.push({ id, baud, model, modelName: this.spec.models[model] ?? null });
      }
      return { found, problems };
    });
  }

  async read(id: number, name: RegisterName): Promise<number> {
    const reg = this.register(name);
    return this.exclusive(async () => this.decode(reg, decodeLE(await this.readRaw(id, reg.address, reg.size), 0, reg.size)));
  }

  async write(id: number, name: RegisterName, value: number): Promise<void> {
    const reg = this.register(name);
    if (reg.readOnly) throw new MotorBusError("REFUSED", `${name} is read-only`, id);
    const data = this.encode(name, reg, value);
    return this.exclusive(async () => {
      await this.request(id, this.spec.build.write(id, reg.address, data));
    });
  }

  /** One broadcast write of a register on several motors (no replies on either protocol). */
  async syncWrite(name: RegisterName, values: Map<number, number>): Promise<void> {
    const reg = this.register(name);
    const raw = new Map([...values].map(([id, v]) => [id, decodeLE(this.encode(name, reg, v), 0, reg.size)]));
    return this.exclusive(async () => {
      this.link.discardInput();
      await this.link.send(this.spec.build.syncWrite(raw, reg.address, reg.size));
    });
  }

  /** One broadcast read; each motor answers in turn. A missing or bad answer names the motor. */
  async syncRead(name: RegisterName, ids: number[]): Promise<Map<number, number>> {
    const reg = this.register(name);
    return this.exclusive(async () => {
      this.link.discardInput();
      await this.link.send(this.spec.build.syncRead(ids, reg.address, reg.size));
      const out = new Map<number, number>();
      const deadline = performance.now() + this.timeoutMs;
      while (out.size < ids.length) {
        const r = await this.link.nextPacket(this.spec.parse, deadline);
        if (r.kind === "timeout") {
          const missing = ids.filter((id) => !out.has(id));
          throw new MotorBusError("TIMEOUT", `Sync read of ${name} on ${this.link.path}: no reply from motor(s) ${missing.join(", ")} within ${this.timeoutMs} ms`, missing[0]);
        }
        if (r.kind === "bad") throw new MotorBusError("BAD_REPLY", `Sync read of ${name} on ${this.link.path}: ${r.reason}`);
        if (r.kind !== "ok") continue;
        const { id, error, params } = r.packet;
        if (!ids.includes(id)) throw new MotorBusError("BAD_REPLY", `Sync read of ${name}: motor ${id} answered but was not asked`, id);
        if (out.has(id)) throw new MotorBusError("DUPLICATE_ID", `Sync read of ${name}: two replies from id ${id} — two motors share it`, id);
        if (error) throw new MotorBusError("MOTOR_ERROR", `${this.where(id)} reports: ${this.spec.describeError(error)}`, id);
        if (params.length !== reg.size) throw new MotorBusError("BAD_REPLY", `Sync read of ${name}: motor ${id} sent ${params.length} byte(s), not ${reg.size}`, id);
        out.set(id, this.decode(reg, decodeLE(params, 0, reg.size)));
      }
      return out;
    });
  }

  syncReadPositions(ids: number[]): Promise<Map<number, number>> {
    return this.syncRead("Present_Position", ids);
  }

  /** Torque off also unlocks a Feetech motor's EEPROM, as LeRobot's disable_torque does. */
  async setTorque(id: number, on: boolean): Promise<void> {
    await this.write(id, "Torque_Enable", on ? 1 : 0);
    if (this.protocol === "feetech") await this.write(id, "Lock", on ? 1 : 0);
  }

  /** Volts: both protocols report tenths of a volt. */
  async readVoltage(id: number): Promise<number> {
    return (await this.read(id, this.spec.voltage as RegisterName)) / 10;
  }

  /** Degrees Celsius. */
  readTemperature(id: number): Promise<number> {
    return this.read(id, this.spec.temperature as RegisterName);
  }

  /**
   * Gives motor `from` the id `to`. Torque goes off first (Dynamixel refuses EEPROM writes with
   * torque on); on Feetech the EEPROM is unlocked (Lock 0) for the write and locked again under
   * the new id, or the new id would be lost at the next power cycle.
   */
  async setId(from: number, to: number): Promise<void> {
    if (!Number.isInteger(to) || to < 0 || to > 252) throw new MotorBusError("REFUSED", `Motor ids are 0..252, not ${to}`, from);
    if (from === to) return;
    if (await this.ping(to)) throw new MotorBusError("REFUSED", `Id ${to} is already taken on ${this.link.path} — give motor ${from} another id, or disconnect the other motor`, to);
    await this.setTorque(from, false);
    await this.write(from, "ID", to);
    if (this.protocol === "feetech") await this.write(to, "Lock", 1);
  }

  /**
   * Writes EEPROM registers of one motor so that they survive a power cycle, as setId does:
   * torque off first (the X series refuse EEPROM writes with torque on; on Feetech it also sets
   * Lock 0), the writes in the order given, then Lock 1 again on Feetech. Torque stays off.
   * Every value is checked before anything is written, so a value that does not fit changes
   * nothing.
   */
  async writeEeprom(id: number, values: Partial<Record<RegisterName, number>>): Promise<void> {
    const entries = Object.entries(values) as [RegisterName, number][];
    for (const [name, value] of entries) {
      const reg = this.register(name);
      if (reg.readOnly) throw new MotorBusError("REFUSED", `${name} is read-only`, id);
      this.encode(name, reg, value);
    }
    await this.setTorque(id, false);
    for (const [name, value] of entries) await this.write(id, name, value);
    if (this.protocol === "feetech") await this.write(id, "Lock", 1);
  }

  /** Sets motor `id`'s baud and moves the line to it, then checks the motor answers there. */
  async setBaud(id: number, baud: number): Promise<void> {
    const code = this.spec.bauds[baud];
    if (code === undefined) throw new MotorBusError("REFUSED", `${this.protocol} motors do not run at ${baud} baud; they take ${Object.keys(this.spec.bauds).join(", ")}`, id);
    await this.setTorque(id, false);
    await this.write(id, "Baud_Rate", code);
    await this.setLineBaud(baud);
    if (!(await this.ping(id))) throw new MotorBusError("TIMEOUT", `Motor ${id} took baud ${baud} but does not answer at it on ${this.link.path}`, id);
    if (this.protocol === "feetech") await this.write(id, "Lock", 1);
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
