// What both motor protocols share: the outcome of parsing bytes off the wire, and the
// control-table types a bus reads registers through.

export type Register = { address: number; size: 1 | 2 | 4; eeprom: boolean; readOnly?: boolean; signBit?: number; signed?: boolean };

export type StatusPacket = { id: number; error: number; params: Buffer };

/**
 * Parsing a reply never throws: bytes that are not yet a whole packet are "incomplete",
 * bytes that cannot be one are "bad" with a reason and how many bytes to drop.
 */
export type ParseResult =
  | { kind: "incomplete" }
  | { kind: "bad"; reason: string; consumed: number }
  | { kind: "ok"; packet: StatusPacket; consumed: number };

export function encodeLE(value: number, size: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < size; i++) out.push((value >>> (8 * i)) & 0xff);
  return out;
}

export function decodeLE(bytes: Buffer | number[], offset: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + bytes[offset + i]!;
  return v;
}

export function encodeSignMagnitude(value: number, signBit: number): number {
  const max = (1 << signBit) - 1;
  const magnitude = Math.abs(value);
  if (magnitude > max) throw new RangeError(`Magnitude ${magnitude} exceeds ${max} (sign bit ${signBit})`);
  return ((value < 0 ? 1 : 0) << signBit) | magnitude;
}

export function decodeSignMagnitude(raw: number, signBit: number): number {
  const magnitude = raw & ((1 << signBit) - 1);
  return (raw >> signBit) & 1 ? -magnitude : magnitude;
}

export function hex(bytes: Buffer | number[]): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}
