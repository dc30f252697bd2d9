import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { buildMlp, buildTwoOutputModel, seededValues } from "../../tests/helpers/onnx-models";
import { createDirectSession } from "./ort-direct";
import { jsonTensorText, toJsonTensor } from "./tensors";

// The main-thread session calls onnxruntime-node's native session directly: it must give the
// same answers as the package's public session, ask for the outputs named, and fail as it does.

const options = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all" } as const;

describe("the native session without the asynchronous wrapper", () => {
  it("is offered by the installed runtime and gives the public session's answers to the bit", async () => {
    const bytes = buildMlp();
    const direct = createDirectSession(bytes, options);
    expect(direct).not.toBeNull();
    const reference = await ort.InferenceSession.create(bytes, options);
    try {
      for (const rows of [1, 3, 64]) {
        const x = Float32Array.from(seededValues(rows * 4, 40 + rows));
        const ours = direct!.run({ x: new ort.Tensor("float32", x, [rows, 4]) }, ["y"]);
        const theirs = await reference.run({ x: new ort.Tensor("float32", x, [rows, 4]) });
        expect(ours.y.dims).toEqual([rows, 3]);
        expect(Buffer.from((ours.y.data as Float32Array).buffer)).toEqual(Buffer.from((theirs.y.data as Float32Array).buffer));
      }
    } finally {
      direct!.release();
      await reference.release();
    }
  });

  it("returns the outputs asked for, in any order, and only those", () => {
    const direct = createDirectSession(buildTwoOutputModel(), options)!;
    try {
      const feeds = () => ({ a: new ort.Tensor("float32", Float32Array.from([5, 7]), [1, 2]), b: new ort.Tensor("float32", Float32Array.from([2, 3]), [1, 2]) });
      const both = direct.run(feeds(), ["diff", "sum"]);
      expect(Array.from(both.sum.data as Float32Array)).toEqual([7, 10]);
      expect(Array.from(both.diff.data as Float32Array)).toEqual([3, 4]);
      const one = direct.run(feeds(), ["diff"]);
      expect(Object.keys(one)).toEqual(["diff"]);
      expect(Array.from(one.diff.data as Float32Array)).toEqual([3, 4]);
      expect(Object.keys(direct.run(feeds(), ["sum", "diff"])).sort()).toEqual(["diff", "sum"]);
    } finally {
      direct.release();
    }
  });

  it("throws the runtime's own error for input the model refuses, and keeps working after it", () => {
    const direct = createDirectSession(buildMlp(), options)!;
    try {
      expect(() => direct.run({ x: new ort.Tensor("float32", new Float32Array(10), [2, 5]) }, ["y"])).toThrow(/invalid dimensions for input: x/);
      const y = direct.run({ x: new ort.Tensor("float32", new Float32Array(4), [1, 4]) }, ["y"]).y;
      expect(y.dims).toEqual([1, 3]);
    } finally {
      direct.release();
    }
  });

  it("refuses bytes that are no model, as loading through the public session does", async () => {
    const garbage = Buffer.from("not an onnx model at all");
    expect(() => createDirectSession(garbage, options)).toThrow();
    await expect(ort.InferenceSession.create(garbage, options)).rejects.toThrow();
  });
});

describe("JSON tensors written as text", () => {
  it("writes exactly what JSON.stringify writes, for every element type", () => {
    const cases: Array<{ type: string; data: ort.Tensor["data"] }> = [
      { type: "float32", data: Float32Array.from([0, -0, 1.5, -2.25, 1e-7, 3.4e38, 0.1, 1 / 3]) },
      { type: "float64", data: Float64Array.from([0, -0, 0.1, 1e21, 1e-7, 123456789.123, Number.MAX_VALUE]) },
      { type: "int8", data: Int8Array.from([-128, 0, 127]) },
      { type: "uint8", data: Uint8Array.from([0, 255]) },
      { type: "int16", data: Int16Array.from([-32768, 32767]) },
      { type: "uint16", data: Uint16Array.from([0, 65535]) },
      { type: "int32", data: Int32Array.from([-2147483648, 2147483647]) },
      { type: "uint32", data: Uint32Array.from([0, 4294967295]) },
      { type: "int64", data: BigInt64Array.from([-(2n ** 53n), 0n, 2n ** 53n]) },
      { type: "uint64", data: BigUint64Array.from([0n, 2n ** 40n]) },
      { type: "bool", data: Uint8Array.from([1, 0, 1]) },
    ];
    for (const { type, data } of cases) {
      const tensor = { type, data, dims: [1, data.length] } as Parameters<typeof toJsonTensor>[1];
      expect(jsonTensorText("out \"q\"", tensor)).toBe(JSON.stringify(toJsonTensor("out \"q\"", tensor)));
    }
    const empty = { type: "float32", data: new Float32Array(0), dims: [0, 3] } as Parameters<typeof toJsonTensor>[1];
    expect(jsonTensorText("e", empty)).toBe(JSON.stringify(toJsonTensor("e", empty)));
  });
});
