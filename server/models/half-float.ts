// IEEE 754 half-precision floats: onnxruntime hands a float16 tensor over as its raw 16-bit
// patterns (a Uint16Array), which must be read as numbers before anyone sees them.

/** The number a half-precision bit pattern stands for. */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** A float16 tensor's values, as numbers. */
export function halvesToNumbers(bits: ArrayLike<number>): number[] {
  return Array.from(bits, halfToNumber);
}

/** Whether a half-precision bit pattern is NaN or ±Infinity (its exponent is all ones). */
export function isHalfNonFinite(bits: number): boolean {
  return (bits & 0x7c00) === 0x7c00;
}
