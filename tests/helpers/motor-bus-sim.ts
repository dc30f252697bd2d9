// A motor bus on the far end of a socat pty pair: six STS3215 (SO-100/SO-101) or six XL330
// (Koch) with their control tables, answering the host the way the real motors do.
//
// Baud on a pty: bytes cross a pty at any speed, so the simulator keeps the line's current baud
// itself (`lineBaud`), and a motor answers only while `lineBaud` equals its own Baud_Rate — as a
// real motor sees only noise at another speed. The sim learns the host's baud one of two ways:
// the host's MotorBus reports each change through its `onLineBaud` option (wired to
// `sim.setLineBaud`), or, with `followHostBaud`, the sim reads the speed the host set on its end
// of the pty before each packet — which works when the host is another process (the agent).
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { SerialPort } from "serialport";
import { DXL_BROADCAST_ID, DXL_INSTRUCTION, dynamixelPacket, parseDynamixelFrame, X_BAUD_RATES, X_CONTROL_TABLE } from "../../agent/hardware/dynamixel";
import { FEETECH_BROADCAST_ID, FEETECH_INSTRUCTION, feetechPacket, parseFeetech, STS_BAUD_RATES, STS_CONTROL_TABLE } from "../../agent/hardware/feetech";
import { decodeLE, encodeLE, encodeSignMagnitude, decodeSignMagnitude } from "../../agent/hardware/packets";

export type SimProtocol = "feetech" | "dynamixel";

export type SimMotorSpec = {
  id: number;
  baud?: number;
  model?: number;
  /** Raw encoder reading, 0..4095, before any homing offset. */
  position?: number;
  /** Tenths of a volt. */
  voltage?: number;
  temperature?: number;
  /** Return_Delay_Time register: units of 2 µs. */
  returnDelay?: number;
};

const FACTORY = {
  feetech: { baud: 1_000_000, model: 777, voltage: 121, temperature: 31, returnDelay: 250 },
  dynamixel: { baud: 57_600, model: 1200, voltage: 50, temperature: 29, returnDelay: 250 },
};

export class SimMotor {
  readonly mem = new Uint8Array(256);
  /** The EEPROM as last saved: what survives a power cycle. */
  private saved = new Uint8Array(256);
  position: number;
  voltage: number;
  temperature: number;
  /** Fault injection: reply with a corrupted checksum/CRC. */
  badChecksum = false;
  /** Fault injection: receive but never answer. */
  silent = false;
  /** Fault injection: answer this much later than the return delay says (a slow adapter or hub). */
  lateByMs = 0;

  constructor(readonly protocol: SimProtocol, spec: SimMotorSpec) {
    const f = FACTORY[protocol];
    const t = protocol === "feetech" ? STS_CONTROL_TABLE : X_CONTROL_TABLE;
    const codes = protocol === "feetech" ? STS_BAUD_RATES : X_BAUD_RATES;
    const baudCode = codes[spec.baud ?? f.baud];
    if (baudCode === undefined) throw new Error(`${protocol} motors do not run at ${spec.baud}`);
    this.put(t.Model_Number.address, 2, spec.model ?? f.model);
    this.put(t.ID.address, 1, spec.id);
    this.put(t.Baud_Rate.address, 1, baudCode);
    this.put(t.Return_Delay_Time.address, 1, spec.returnDelay ?? f.returnDelay);
    this.put(t.Max_Position_Limit.address, protocol === "feetech" ? 2 : 4, 4095);
    if (protocol === "feetech") this.put(STS_CONTROL_TABLE.Lock.address, 1, 1);
    this.saved.set(this.mem.subarray(0, this.eepromEnd));
    this.position = spec.position ?? 2048;
    this.voltage = spec.voltage ?? f.voltage;
    this.temperature = spec.temperature ?? f.temperature;
  }

  private get table() {
    return this.protocol === "feetech" ? STS_CONTROL_TABLE : X_CONTROL_TABLE;
  }
  /** Addresses below this are EEPROM on both motor families (40 on STS, 64 on X). */
  get eepromEnd(): number {
    return this.protocol === "feetech" ? 40 : 64;
  }

  put(address: number, size: number, value: number): void {
    this.mem.set(encodeLE(value, size), address);
  }
  get(address: number, size: number): number {
    return decodeLE([...this.mem], address, size);
  }

  get id(): number {
    return this.mem[this.table.ID.address]!;
  }
  get baud(): number {
    const code = this.mem[this.table.Baud_Rate.address]!;
    const codes = this.protocol === "feetech" ? STS_BAUD_RATES : X_BAUD_RATES;
    return Number(Object.entries(codes).find(([, c]) => c === code)?.[0] ?? NaN);
  }
  get returnDelayUs(): number {
    return this.mem[this.table.Return_Delay_Time.address]! * 2;
  }
  get homingOffset(): number {
    if (this.protocol === "feetech") return decodeSignMagnitude(this.get(STS_CONTROL_TABLE.Homing_Offset.address, 2), 11);
    const raw = this.get(X_CONTROL_TABLE.Homing_Offset.address, 4);
    return raw >= 2 ** 31 ? raw - 2 ** 32 : raw;
  }

  /** Present_* registers from the motor's state, as the firmware refreshes them. */
  private refresh(): void {
    if (this.protocol === "feetech") {
      // STS: Present_Position = actual − Homing_Offset, wrapped to the encoder's 0..4095.
      const present = (((this.position - this.homingOffset) % 4096) + 4096) % 4096;
      this.put(STS_CONTROL_TABLE.Present_Position.address, 2, encodeSignMagnitude(present, 15));
      this.put(STS_CONTROL_TABLE.Present_Voltage.address, 1, this.voltage);
      this.put(STS_CONTROL_TABLE.Present_Temperature.address, 1, this.temperature);
    } else {
      // X series: Drive_Mode bit 0 reverses the direction, so the motor reports the position
      // negated, and Present_Position = that + Homing_Offset.
      const isReversed = (this.mem[X_CONTROL_TABLE.Drive_Mode.address]! & 1) === 1;
      const present = (isReversed ? -this.position : this.position) + this.homingOffset;
      this.put(X_CONTROL_TABLE.Present_Position.address, 4, present < 0 ? present + 2 ** 32 : present);
      this.put(X_CONTROL_TABLE.Present_Input_Voltage.address, 2, this.voltage);
      this.put(X_CONTROL_TABLE.Present_Temperature.address, 1, this.temperature);
    }
  }

  read(address: number, size: number): Buffer {
    this.refresh();
    return Buffer.from(this.mem.subarray(address, address + size));
  }

  /** Applies a write; returns the status error byte. */
  write(address: number, data: Buffer): number {
    const end = address + data.length;
    if (this.protocol === "dynamixel") {
      // X series: EEPROM is writable only with torque off (access error 7 otherwise).
      if (address < this.eepromEnd && this.mem[X_CONTROL_TABLE.Torque_Enable.address]) return 7;
      if (address <= X_CONTROL_TABLE.Model_Number.address + 1 || (address >= 70 && address < 72) || address >= 120) return 7;
      this.mem.set(data, address);
      if (address < this.eepromEnd) this.saved.set(this.mem.subarray(0, this.eepromEnd));
      return 0;
    }
    // STS: an EEPROM write takes effect at once, but is saved only while Lock is 0.
    if (address < 5 || (address >= 56 && end <= 71)) return 0;
    this.mem.set(data, address);
    if (address < this.eepromEnd && this.mem[STS_CONTROL_TABLE.Lock.address] === 0) this.saved.set(this.mem.subarray(0, this.eepromEnd));
    return 0;
  }

  /** Power off and on: the EEPROM as saved, RAM at its defaults. */
  powerCycle(): void {
    this.mem.fill(0, this.eepromEnd);
    this.mem.set(this.saved.subarray(0, this.eepromEnd));
    if (this.protocol === "feetech") this.mem[STS_CONTROL_TABLE.Lock.address] = 1;
  }
}

export type MotorBusSimOptions = {
  protocol: SimProtocol;
  motors?: SimMotorSpec[];
  dir?: string;
  lineBaud?: number;
  /** Read the host's baud from its end of the pty before each packet, instead of waiting to be told. */
  followHostBaud?: boolean;
};

// Node cannot call ioctl, so one python3 per sim holds the host's end of the pty open (read
// only, never reading: the host gets every byte) and answers each request line with its output
// speed. TCGETS2 rather than TCGETS: serialport sets rates such as 128000 and 250000 with
// BOTHER, which only termios2's c_ispeed/c_ospeed (two uint32 at offset 36) carry.
// 0x802C542A is _IOR('T', 0x2A, struct termios2) on Linux x86_64 and arm64.
const HOST_BAUD_PROBE = `
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
print("ready", flush=True)
for _ in sys.stdin:
    termios2 = fcntl.ioctl(fd, 0x802C542A, bytes(44))
    print(struct.unpack_from("=I", termios2, 40)[0], flush=True)
`;

/** The host's line speed, read from the pty's termios by a long-lived python3. */
class HostBaudProbe {
  private readonly waiting: { resolve: (baud: number) => void; reject: (error: Error) => void }[] = [];
  private exited: Error | null = null;

  private constructor(private readonly child: ChildProcess, lines: readline.Interface, stderr: () => string) {
    lines.on("line", (line) => this.waiting.shift()?.resolve(Number(line)));
    child.on("exit", (code, sig) => {
      this.exited = new Error(`The sim's host-baud probe (python3) exited (${code ?? sig}): ${stderr()}`);
      for (const w of this.waiting.splice(0)) w.reject(this.exited);
    });
  }

  static async start(hostPath: string): Promise<HostBaudProbe> {
    const child = spawn("python3", ["-c", HOST_BAUD_PROBE, hostPath], { stdio: ["pipe", "pipe", "pipe"] });
    live.add(child);
    child.on("exit", () => live.delete(child));
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const lines = readline.createInterface({ input: child.stdout! });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`The sim's host-baud probe (python3) did not start: ${stderr}`)), 5000);
      lines.once("line", () => {
        clearTimeout(timer);
        resolve();
      });
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`The sim's host-baud probe (python3) exited (${code}): ${stderr}`)));
    });
    return new HostBaudProbe(child, lines, () => stderr);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  read(): Promise<number> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin!.write("\n");
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGTERM");
    await exited;
  }
}

export class MotorBusSim {
  lineBaud: number;
  readonly motors: SimMotor[];
  /** Every packet the host sent, for tests that check the bytes on the wire. */
  readonly received: Buffer[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private chain: Promise<void> = Promise.resolve();

  private constructor(readonly protocol: SimProtocol, readonly hostPath: string, readonly dir: string, private socat: ChildProcess, private port: SerialPort, motors: SimMotor[], lineBaud: number, private readonly hostBaud: HostBaudProbe | null) {
    this.motors = motors;
    this.lineBaud = lineBaud;
    port.on("data", (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.chain = this.chain.then(() => this.drain()).catch(() => {});
    });
  }

  /** Starts socat and opens its far end. `hostPath` is the port the code under test opens. */
  static async start({ protocol, motors, dir, lineBaud, followHostBaud = false }: MotorBusSimOptions): Promise<MotorBusSim> {
    const folder = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "gantry-bus-"));
    const hostPath = path.join(folder, "ttyUSB0");
    const simPath = path.join(folder, "sim0");
    const socat = spawn("socat", ["-d", "-d", `pty,raw,echo=0,link=${hostPath}`, `pty,raw,echo=0,link=${simPath}`], { stdio: ["ignore", "ignore", "pipe"] });
    live.add(socat);
    socat.on("exit", () => live.delete(socat));
    await new Promise<void>((resolve, reject) => {
      let log = "";
      const timer = setTimeout(() => reject(new Error(`socat did not start: ${log}`)), 5000);
      socat.stderr!.on("data", (d: Buffer) => {
        log += d.toString();
        if (log.includes("starting data transfer loop")) {
          clearTimeout(timer);
          resolve();
        }
      });
      socat.on("error", (err) => reject(err));
      socat.on("exit", (code) => reject(new Error(`socat exited (${code}): ${log}`)));
    });
    const port = new SerialPort({ path: simPath, baudRate: 1_000_000, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    let hostBaud: HostBaudProbe | null = null;
    try {
      if (followHostBaud) hostBaud = await HostBaudProbe.start(hostPath);
    } catch (error) {
      await new Promise<void>((resolve) => port.close(() => resolve()));
      socat.kill("SIGTERM");
      throw error;
    }
    const specs = motors ?? [1, 2, 3, 4, 5, 6].map((id) => ({ id }));
    return new MotorBusSim(protocol, hostPath, folder, socat, port, specs.map((s) => new SimMotor(protocol, s)), lineBaud ?? FACTORY[protocol].baud, hostBaud);
  }

  get socatPid(): number | undefined {
    return this.socat.pid;
  }

  setLineBaud = (baud: number): void => {
    this.lineBaud = baud;
  };

  /** The motors that would hear a packet for `id` now. */
  at(id: number): SimMotor[] {
    return this.motors.filter((m) => m.id === id && m.baud === this.lineBaud);
  }

  /** The one motor with `id`, whatever its baud (for tests to inspect and to move). */
  motor(id: number): SimMotor {
    const m = this.motors.filter((x) => x.id === id);
    if (m.length !== 1) throw new Error(`${m.length} simulated motors have id ${id}`);
    return m[0]!;
  }

  /** A person moving the arm by hand: raw encoder positions by motor id. */
  setPositions(positions: Record<number, number>): void {
    for (const [id, pos] of Object.entries(positions)) this.motor(Number(id)).position = pos;
  }

  powerCycle(): void {
    for (const m of this.motors) m.powerCycle();
  }

  private async drain(): Promise<void> {
    for (;;) {
      if (this.protocol === "feetech") {
        const r = parseFeetech(this.buf);
        if (r.kind === "incomplete") return;
        this.buf = this.buf.subarray(r.consumed);
        if (r.kind === "bad") continue;
        this.received.push(Buffer.from(feetechPacket(r.packet.id, r.packet.error, [...r.packet.params])));
        await this.followHost();
        await this.handle(r.packet.id, r.packet.error, r.packet.params);
      } else {
        const r = parseDynamixelFrame(this.buf);
        if (r.kind === "incomplete") return;
        this.buf = this.buf.subarray(r.consumed);
        if (r.kind === "bad") continue;
        this.received.push(dynamixelPacket(r.frame.id, r.frame.instruction, [...r.frame.payload]));
        await this.followHost();
        await this.handle(r.frame.id, r.frame.instruction, r.frame.payload);
      }
    }
  }

  /** With followHostBaud: the packet was sent at whatever speed the host's end of the pty has now. */
  private async followHost(): Promise<void> {
    if (this.hostBaud) this.lineBaud = await this.hostBaud.read();
  }

  private status(m: SimMotor, id: number, error: number, params: number[]): Buffer {
    const packet = this.protocol === "feetech" ? feetechPacket(id, error, params) : dynamixelPacket(id, DXL_INSTRUCTION.status, [error, ...params]);
    if (m.badChecksum) packet[packet.length - 1] ^= 0x5a;
    return packet;
  }

  /**
   * The answers of the motors that heard one packet. Several motors on one id answer at once:
   * their replies go out in one write, back to back, however busy the host is.
   */
  private async reply(motors: SimMotor[], build: (m: SimMotor) => Buffer): Promise<void> {
    const speaking = motors.filter((m) => !m.silent);
    if (!speaking.length) return;
    const packets = speaking.map(build);
    const delayMs = Math.max(...speaking.map((m) => m.returnDelayUs / 1000 + m.lateByMs));
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    await new Promise<void>((resolve) => this.port.write(Buffer.concat(packets), () => resolve()));
  }

  private async handle(id: number, instruction: number, params: Buffer): Promise<void> {
    const fe = this.protocol === "feetech";
    const broadcast = id === (fe ? FEETECH_BROADCAST_ID : DXL_BROADCAST_ID);
    const I = fe ? FEETECH_INSTRUCTION : DXL_INSTRUCTION;
    const targets = broadcast ? this.motors.filter((m) => m.baud === this.lineBaud) : this.at(id);
    const addrSize = fe ? 1 : 2;
    switch (instruction) {
      case I.ping:
        if (broadcast) for (const m of targets) await this.reply([m], () => this.status(m, m.id, 0, fe ? [] : [...encodeLE(m.get(0, 2), 2), 0x2e]));
        else await this.reply(targets, (m) => this.status(m, m.id, 0, fe ? [] : [...encodeLE(m.get(0, 2), 2), 0x2e]));
        return;
      case I.read: {
        const address = decodeLE(params, 0, addrSize);
        const size = decodeLE(params, addrSize, addrSize);
        if (broadcast) return;
        await this.reply(targets, (m) => this.status(m, m.id, 0, [...m.read(address, size)]));
        return;
      }
      case I.write: {
        const address = decodeLE(params, 0, addrSize);
        const data = Buffer.from(params.subarray(addrSize));
        // The status goes out from the id and at the baud the motor had when the packet came.
        const statuses = new Map(targets.map((m) => [m, this.status(m, m.id, m.write(address, data), [])]));
        if (!broadcast) await this.reply(targets, (m) => statuses.get(m)!);
        return;
      }
      case I.syncRead: {
        const address = decodeLE(params, 0, addrSize);
        const size = decodeLE(params, addrSize, addrSize);
        for (const target of params.subarray(2 * addrSize)) await this.reply(this.at(target), (m) => this.status(m, m.id, 0, [...m.read(address, size)]));
        return;
      }
      case I.syncWrite: {
        const address = decodeLE(params, 0, addrSize);
        const size = decodeLE(params, addrSize, addrSize);
        for (let i = 2 * addrSize; i + 1 + size <= params.length; i += 1 + size) for (const m of this.at(params[i]!)) m.write(address, Buffer.from(params.subarray(i + 1, i + 1 + size)));
        return;
      }
    }
  }

  get hostBaudProbePid(): number | undefined {
    return this.hostBaud?.pid;
  }

  async stop(): Promise<void> {
    await this.hostBaud?.stop();
    await new Promise<void>((resolve) => (this.port.isOpen ? this.port.close(() => resolve()) : resolve()));
    if (this.socat.exitCode === null) {
      const exited = new Promise((r) => this.socat.once("exit", r));
      this.socat.kill("SIGTERM");
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// socat and python3 children a crashed test left running are ended when the test process exits.
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const p of live) p.kill("SIGTERM");
});
