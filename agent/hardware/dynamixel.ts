// Dynamixel protocol 2.0 (Koch's XL330/XL430): FF FF FD 00 id lenL lenH instr params crcL crcH.
// len counts instr + params + CRC; the CRC-16 (polynomial 0x8005, as in the Dynamixel SDK) covers
// everything before it; FF FF FD inside instr/params is stuffed to FF FF FD FD.
// Addresses follow LeRobot's motors/dynamixel/tables.py (X series).
import { encodeLE, hex, type ParseResult, type Register } from "./packets";

export const DXL_INSTRUCTION = { ping: 0x01, read: 0x02, write: 0x03, syncRead: 0x82, syncWrite: 0x83, status: 0x55 } as const;
export const DXL_BROADCAST_ID = 0xfe;

export const X_CONTROL_TABLE = {
  Model_Number: { address: 0, size: 2, eeprom: true, readOnly: true },
  Firmware_Version: { address: 6, size: 1, eeprom: true, readOnly: true },
  ID: { address: 7, size: 1, eeprom: true },
  Baud_Rate: { address: 8, size: 1, eeprom: true },
  Return_Delay_Time: { address: 9, size: 1, eeprom: true },
  Drive_Mode: { address: 10, size: 1, eeprom: true },
  Operating_Mode: { address: 11, size: 1, eeprom: true },
  Homing_Offset: { address: 20, size: 4, eeprom: true, signed: true },
  Max_Position_Limit: { address: 48, size: 4, eeprom: true },
  Min_Position_Limit: { address: 52, size: 4, eeprom: true },
  Torque_Enable: { address: 64, size: 1, eeprom: false },
  LED: { address: 65, size: 1, eeprom: false },
  Hardware_Error_Status: { address: 70, size: 1, eeprom: false, readOnly: true },
  Goal_Position: { address: 116, size: 4, eeprom: false, signed: true },
  Present_Position: { address: 132, size: 4, eeprom: false, readOnly: true, signed: true },
  Present_Input_Voltage: { address: 144, size: 2, eeprom: false, readOnly: true },
  Present_Temperature: { address: 146, size: 1, eeprom: false, readOnly: true },
} satisfies Record<string, Register>;

export const X_BAUD_RATES: Record<number, number> = { 9_600: 0, 57_600: 1, 115_200: 2, 1_000_000: 3, 2_000_000: 4, 3_000_000: 5, 4_000_000: 6 };
export const DYNAMIXEL_SCAN_BAUDS = [9_600, 57_600, 115_200, 1_000_000, 2_000_000, 3_000_000, 4_000_000];
export const DYNAMIXEL_MODELS: Record<number, string> = { 1190: "xl330-m077", 1200: "xl330-m288", 1060: "xl430-w250", 1020: "xm430-w350", 1120: "xm540-w270", 1070: "xc430-w150" };

const ERRORS: Record<number, string> = { 1: "result fail", 2: "instruction error", 3: "CRC error (the motor received a corrupted packet)", 4: "data range error", 5: "data length error", 6: "data limit error", 7: "access error (EEPROM is writable only with torque off; some registers are read-only)" };

export function describeDynamixelError(error: number): string {
  const parts: string[] = [];
  if (error & 0x7f) parts.push(ERRORS[error & 0x7f] ?? `error ${error & 0x7f}`);
  if (error & 0x80) parts.push("hardware alert (read Hardware_Error_Status)");
  return parts.join(", ");
}

export function crc16(bytes: Uint8Array | number[], length = bytes.length): number {
  let crc = 0;
  for (let i = 0; i < length; i++) {
    crc ^= bytes[i]! << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x8005) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function stuff(bytes: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    out.push(bytes[i]!);
    if (bytes[i] === 0xfd && out.length >= 3 && out[out.length - 2] === 0xff && out[out.length - 3] === 0xff) out.push(0xfd);
  }
  return out;
}

function unstuff(bytes: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    out.push(bytes[i]!);
    if (i >= 2 && bytes[i] === 0xfd && bytes[i - 1] === 0xff && bytes[i - 2] === 0xff && bytes[i + 1] === 0xfd) i++;
  }
  return Buffer.from(out);
}

/** One packet; `instruction` is 0x55 with `error` first in params for the simulator's replies. */
export function dynamixelPacket(id: number, instruction: number, params: number[] = []): Buffer {
  const payload = stuff([instruction, ...params]);
  const len = payload.length + 2;
  const head = [0xff, 0xff, 0xfd, 0x00, id, len & 0xff, len >> 8, ...payload];
  const crc = crc16(head);
  return Buffer.from([...head, crc & 0xff, crc >> 8]);
}

export const buildDynamixel = {
  ping: (id: number) => dynamixelPacket(id, DXL_INSTRUCTION.ping),
  read: (id: number, address: number, size: number) => dynamixelPacket(id, DXL_INSTRUCTION.read, [...encodeLE(address, 2), ...encodeLE(size, 2)]),
  write: (id: number, address: number, data: number[]) => dynamixelPacket(id, DXL_INSTRUCTION.write, [...encodeLE(address, 2), ...data]),
  syncRead: (ids: number[], address: number, size: number) => dynamixelPacket(DXL_BROADCAST_ID, DXL_INSTRUCTION.syncRead, [...encodeLE(address, 2), ...encodeLE(size, 2), ...ids]),
  syncWrite: (values: Map<number, number>, address: number, size: number) =>
    dynamixelPacket(DXL_BROADCAST_ID, DXL_INSTRUCTION.syncWrite, [...encodeLE(address, 2), ...encodeLE(size, 2), ...[...values].flatMap(([id, v]) => [id, ...encodeLE(v, size)])]),
};

export type DynamixelFrame = { id: number; instruction: number; payload: Buffer };

/** Parses one packet's frame: header, length, CRC, unstuffing. */
export function parseDynamixelFrame(buf: Buffer): { kind: "incomplete" } | { kind: "bad"; reason: string; consumed: number } | { kind: "ok"; frame: DynamixelFrame; consumed: number } {
  const start = buf.indexOf(Buffer.from([0xff, 0xff, 0xfd]));
  if (start < 0) return buf.length > 3 ? { kind: "bad", reason: `no FF FF FD header in ${hex(buf.subarray(0, 16))}`, consumed: buf.length - 2 } : { kind: "incomplete" };
  if (start > 0) return { kind: "bad", reason: `${start} stray byte(s) before the header: ${hex(buf.subarray(0, Math.min(start, 16)))}`, consumed: start };
  if (buf.length < 7) return { kind: "incomplete" };
  if (buf[3] !== 0x00) return { kind: "bad", reason: `reserved byte is 0x${buf[3]!.toString(16)}, not 00`, consumed: 3 };
  const len = buf[5]! | (buf[6]! << 8);
  if (len < 3) return { kind: "bad", reason: `length ${len} is shorter than any packet`, consumed: 3 };
  if (buf.length < 7 + len) return { kind: "incomplete" };
  const total = 7 + len;
  const expected = crc16(buf, total - 2);
  const got = buf[total - 2]! | (buf[total - 1]! << 8);
  if (expected !== got) return { kind: "bad", reason: `CRC 0x${got.toString(16)} should be 0x${expected.toString(16)} (packet ${hex(buf.subarray(0, total))})`, consumed: total };
  const body = unstuff(Buffer.from(buf.subarray(7, total - 2)));
  return { kind: "ok", frame: { id: buf[4]!, instruction: body[0]!, payload: Buffer.from(body.subarray(1)) }, consumed: total };
}

/** A status packet from a motor: instruction 0x55, then the error byte, then data. */
export function parseDynamixel(buf: Buffer): ParseResult {
  const r = parseDynamixelFrame(buf);
  if (r.kind !== "ok") return r;
  if (r.frame.instruction !== DXL_INSTRUCTION.status) return { kind: "bad", reason: `instruction 0x${r.frame.instruction.toString(16)} where a status (0x55) was expected`, consumed: r.consumed };
  if (r.frame.payload.length < 1) return { kind: "bad", reason: "status packet without an error byte", consumed: r.consumed };
  return { kind: "ok", packet: { id: r.frame.id, error: r.frame.payload[0]!, params: Buffer.from(r.frame.payload.subarray(1)) }, consumed: r.consumed };
}
