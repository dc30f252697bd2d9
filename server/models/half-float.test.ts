import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { buildHalfOutputModel } from "../../tests/helpers/onnx-models";
import { float16Values, halfToNumber, halvesToNumbers, isHalfNonFinite, numbersToHalves, numberToHalf } from "./half-float";

describe("half-precision floats", () => {
  it("reads the patterns onnxruntime gives for a float16 output", () => {
    // 1, 0.5, -2, the largest half, the smallest subnormal, and a negative zero.
    expect(halvesToNumbers(Uint16Array.of(0x3c00, 0x3800, 0xc000, 0x7bff, 0x0001, 0x8000))).toEqual([1, 0.5, -2, 65504, 2 ** -24, -0]);
    expect(halfToNumber(0x3555)).toBeCloseTo(1 / 3, 3);
  });

  it("reads ±Infinity and NaN, and says they are not finite", () => {
    expect(halfToNumber(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(halfToNumber(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(halfToNumber(0x7e00)).toBeNaN();
    expect([0x7c00, 0xfc00, 0x7e00].every(isHalfNonFinite)).toBe(true);
    expect([0x3c00, 0x7bff, 0x0000, 0x8001].some(isHalfNonFinite)).toBe(false);
  });

  it("writes numbers as the nearest half, ties to even, Infinity past the largest", () => {
    expect(Array.from(numbersToHalves([1, 0.5, -2, 65504, 2 ** -24, 0, -0]))).toEqual([0x3c00, 0x3800, 0xc000, 0x7bff, 0x0001, 0x0000, 0x8000]);
    expect(numberToHalf(65520)).toBe(0x7c00); // halfway past 65504 rounds up, to Infinity
    expect(numberToHalf(-1e6)).toBe(0xfc00);
    expect(numberToHalf(1 + 2 ** -11)).toBe(0x3c00); // halfway between 1 and the next half: to the even one
    expect(numberToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(numberToHalf(2 ** -26)).toBe(0); // under half the smallest subnormal
    expect(isHalfNonFinite(numberToHalf(Number.NaN))).toBe(true);
    // Every finite half reads back as itself.
    for (let bits = 0; bits < 0x10000; bits++) {
      if (isHalfNonFinite(bits)) continue;
      expect(numberToHalf(halfToNumber(bits))).toBe(bits === 0x8000 ? 0x8000 : bits);
    }
  });

  it("reads a float16 tensor as onnxruntime hands it over, bit patterns or numbers alike", async () => {
    const session = await ort.InferenceSession.create(buildHalfOutputModel());
    const { y } = await session.run({ x: new ort.Tensor("float32", Float32Array.of(1, 0.5, -2, 65504), [2, 2]) });
    expect(y.type).toBe("float16");
    expect(float16Values(y.data as ArrayLike<number>)).toEqual([1, 0.5, -2, 65504]);
    expect(float16Values(Uint16Array.of(0x3c00, 0xc000))).toEqual([1, -2]);
    expect(float16Values([1, -2])).toEqual([1, -2]); // as a Float16Array holds them
    await session.release();
  });
});
