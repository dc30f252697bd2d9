// Feetech STS/SMS protocol 0 (the SO-100/SO-101's STS3215): FF FF id len instr params checksum,
// where len counts instr + params + checksum and checksum = ~(id + len + instr + params) & 0xFF.
// Control-table addresses follow LeRobot's motors/feetech/tables.py.
import { encodeLE, hex, type ParseResult, type Register } from "./packets";

export const FEETECH_INSTRUCTION = { ping: 0x01, read: 0x02, write: 0x03, syncRead: 0x82, syncWrite: 0x83 } as const;
export const FEETECH_BROADCAST_ID = 0xfe;

export const STS_CONTROL_TABLE = {
  Firmware_Major_Version: { address: 0, size: 1, eeprom: true, readOnly: true },
  Firmware_Minor_Version: { address: 1, size: 1, eeprom: true, readOnly: true },
  Model_Number: { address: 3, size: 2, eeprom: true, readOnly: true },
  ID: { address: 5, size: 1, eeprom: true },
  Baud_Rate: { address: 6, size: 1, eeprom: true },
  Return_Delay_Time: { address: 7, size: 1, eeprom: true },
  Response_Status_Level: { address: 8, size: 1, eeprom: true },
  Min_Position_Limit: { address: 9, size: 2, eeprom: true },
  Max_Position_Limit: { address: 11, size: 2, eeprom: true },
  Max_Temperature_Limit: { address: 13, size: 1, eeprom: true },
  Max_Voltage_Limit: { address: 14, size: 1, eeprom: true },
  Min_Voltage_Limit: { address: 15, size: 1, eeprom: true },
  Phase: { address: 18, size: 1, eeprom: true },
  Homing_Offset: { address: 31, size: 2, eeprom: true, signBit: 11 },
  Operating_Mode: { address: 33, size: 1, eeprom: true },
  Torque_Enable: { address: 40, size: 1, eeprom: false },
  Acceleration: { address: 41, size: 1, eeprom: false },
  Goal_Position: { address: 42, size: 2, eeprom: false, signBit: 15 },
  Lock: { address: 55, size: 1, eeprom: false },
  Present_Position: { address: 56, size: 2, eeprom: false, readOnly: true, signBit: 15 },
  Present_Velocity: { address: 58, size: 2, eeprom: false, readOnly: true, signBit: 15 },
  Present_Load: { address: 60, size: 2, eeprom: false, readOnly: true, signBit: 10 },
  Present_Voltage: { address: 62, size: 1, eeprom: false, readOnly: true },
  Present_Temperature: { address: 63, size: 1, eeprom: false, readOnly: true },
  Moving: { address: 66, size: 1, eeprom: false, readOnly: true },
  Present_Current: { address: 69, size: 2, eeprom: false, readOnly: true },
} satisfies Record<string, Register>;

export const STS_BAUD_RATES: Record<number, number> = { 1_000_000: 0, 500_000: 1, 250_000: 2, 128_000: 3, 115_200: 4, 57_600: 5, 38_400: 6, 19_200: 7 };
/** LeRobot's SCAN_BAUDRATES for Feetech. */
export const FEETECH_SCAN_BAUDS = [4_800, 9_600, 14_400, 19_200, 38_400, 57_600, 115_200, 128_000, 250_000, 500_000, 1_000_000];
export const FEETECH_MODELS: Record<number, string> = { 777: "sts3215", 2825: "sts3250", 11272: "sm8512bl", 1284: "scs0009" };

// Status-byte bits; any of them set means the motor is in an alarm state.
const ERROR_BITS: [number, string][] = [[0x01, "input voltage out of range"], [0x02, "angle sensor fault"], [0x04, "overheating"], [0x08, "overcurrent"], [0x20, "overload"]];

export function describeFeetechError(error: number): string {
  const parts = ERROR_BITS.filter(([bit]) => error & bit).map(([, what]) => what);
  return parts.length ? parts.join(", ") : `status 0x${error.toString(16)}`;
}

function checksum(bytes: number[]): number {
  let sum = 0;
  for (const b of bytes) sum += b;
  return ~sum & 0xff;
}

export function feetechPacket(id: number, instruction: number, params: number[] = []): Buffer {
  const body = [id, params.length + 2, instruction, ...params];
  return Buffer.from([0xff, 0xff, ...body, checksum(body)]);
}

export const buildFeetech = {
  ping: (id: number) => feetechPacket(id, FEETECH_INSTRUCTION.ping),
  read: (id: number, address: number, size: number) => feetechPacket(id, FEETECH_INSTRUCTION.read, [address, size]),
  write: (id: number, address: number, data: number[]) => feetechPacket(id, FEETECH_INSTRUCTION.write, [address, ...data]),
  syncRead: (ids: number[], address: number, size: number) => feetechPacket(FEETECH_BROADCAST_ID, FEETECH_INSTRUCTION.syncRead, [address, size, ...ids]),
  syncWrite: (values: Map<number, number>, address: number, size: number) =>
    feetechPacket(FEETECH_BROADCAST_ID, FEETECH_INSTRUCTION.syncWrite, [address, size, ...[...values].flatMap(([id, v]) => [id, ...encodeLE(v, size)])]),
};

/**
 * Parses one packet at the start of `buf` (status packets from a motor, or instruction packets
 * for the simulator: the framing is the same, the byte after len is the error or the instruction).
 */
export function parseFeetech(buf: Buffer): ParseResult {
  const start = findHeader(buf);
  if (start < 0) return buf.length > 1 ? { kind: "bad", reason: `no FF FF header in ${hex(buf.subarray(0, 16))}`, consumed: buf.length - 1 } : { kind: "incomplete" };
  if (start > 0) return { kind: "bad", reason: `${start} stray byte(s) before the header: ${hex(buf.subarray(0, Math.min(start, 16)))}`, consumed: start };
  if (buf.length < 4) return { kind: "incomplete" };
  const id = buf[2]!;
  const len = buf[3]!;
  if (id === 0xff) return { kind: "bad", reason: "id 0xFF is not a motor id", consumed: 1 };
  if (len < 2) return { kind: "bad", reason: `length byte ${len} is shorter than any packet`, consumed: 2 };
  if (buf.length < 4 + len) return { kind: "incomplete" };
  const body = [...buf.subarray(2, 3 + len)];
  const expected = checksum(body);
  const got = buf[3 + len]!;
  if (expected !== got) return { kind: "bad", reason: `checksum 0x${got.toString(16)} should be 0x${expected.toString(16)} (packet ${hex(buf.subarray(0, 4 + len))})`, consumed: 4 + len };
  return { kind: "ok", packet: { id, error: buf[4]!, params: Buffer.from(buf.subarray(5, 3 + len)) }, consumed: 4 + len };
}

function findHeader(buf: Buffer): number {
  for (let i = 0; i + 1 < buf.length; i++) if (buf[i] === 0xff && buf[i + 1] === 0xff) {
    // FF FF FF: the header is the last two of a run.
    let j = i;
    while (buf[j + 2] === 0xff) j++;
    return j;
  }
  return -1;
}
