// IEEE 754 half-precision floats: onnxruntime takes and gives a float16 tensor as its raw 16-bit
// patterns (a Uint16Array), which are read as numbers before anyone sees them, and written from
// numbers when a request or a test vector feeds one.

/** The number a half-precision bit pattern stands for. */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Half-precision bit patterns, as numbers. */
export function halvesToNumbers(bits: ArrayLike<number>): number[] {
  return Array.from(bits, halfToNumber);
}

/**
 * A float16 tensor's values as numbers, from what onnxruntime hands over: its bit patterns (a
 * Uint16Array), or the numbers themselves (a Float16Array, where the JavaScript runtime has one).
 */
export function float16Values(data: ArrayLike<number>): number[] {
  return data instanceof Uint16Array ? halvesToNumbers(data) : Array.from(data, Number);
}

/** Whether a half-precision bit pattern is NaN or ±Infinity (its exponent is all ones). */
export function isHalfNonFinite(bits: number): boolean {
  return (bits & 0x7c00) === 0x7c00;
}

const float32 = new Float32Array(1);
const float32Bits = new Uint32Array(float32.buffer);

/** The half-precision bit pattern nearest to `value` (ties to even); past ±65504 it is ±Infinity. */
export function numberToHalf(value: number): number {
  float32[0] = value;
  const bits = float32Bits[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // A subnormal half: the mantissa with its leading one, shifted into place, rounded.
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midway = 1 << (shift - 1);
    if (rest > midway || (rest === midway && half & 1)) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa steps the exponent up, as rounding should (to Infinity past the largest).
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return half;
}

/** Numbers as a float16 tensor's bit patterns. */
export function numbersToHalves(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = numberToHalf(values[i]);
  return out;
}
