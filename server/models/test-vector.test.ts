import { describe, expect, it } from "vitest";
import { encodeNpy } from "../../tests/helpers/onnx-models";
import { parseTestVector, prepareTestVector } from "./test-vector";
import type { Signature } from "./validation.schemas";

const mlp: Signature = { inputs: [{ name: "x", type: "float32", shape: ["batch", 4] }], outputs: [{ name: "y", type: "float32", shape: ["batch", 3] }] };
const mixed: Signature = {
  inputs: [
    { name: "ids", type: "int64", shape: ["n"] },
    { name: "mask", type: "bool", shape: ["n"] },
  ],
  outputs: [{ name: "y", type: "float32", shape: ["n"] }],
};
const x = { type: "float32", shape: [1, 4], data: [0.1, 0.2, 0.3, 0.4] };

describe("test vector forms", () => {
  it.each([
    ["nested arrays by name", { inputs: { x: [[0.1, 0.2, 0.3, 0.4]] } }],
    ["{shape, data} by name", { inputs: { x: { shape: [1, 4], data: [0.1, 0.2, 0.3, 0.4] } } }],
    ["{shape, data} with nested data and a datatype", { inputs: { x: { shape: [1, 4], datatype: "FP32", data: [[0.1, 0.2, 0.3, 0.4]] } } }],
    ["the Open Inference Protocol request", { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [0.1, 0.2, 0.3, 0.4] }], id: "1", parameters: {} }],
    ["a .npy array", { inputs: { x: encodeNpy("<f8", [1, 4], new Float64Array([0.1, 0.2, 0.3, 0.4])) } }],
  ])("reads %s", (_name, raw) => {
    expect(prepareTestVector(raw, mlp)).toEqual({ vector: { inputs: { x }, outputs: {}, tolerance: undefined }, problems: [] });
  });

  it("reads expected outputs as an OIP response lists them, and skips outputs an OIP request only names", () => {
    const y = [{ name: "y", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }];
    expect(prepareTestVector({ inputs: { x: [[0.1, 0.2, 0.3, 0.4]] }, outputs: y, tolerance: 0.001 }, mlp).vector).toEqual({
      inputs: { x },
      outputs: { y: { type: "float32", shape: [1, 3], data: [1, 2, 3] } },
      tolerance: 0.001,
    });
    expect(prepareTestVector({ inputs: { x: [[0.1, 0.2, 0.3, 0.4]] }, outputs: [{ name: "y" }] }, mlp).vector?.outputs).toEqual({});
  });

  it.each([
    ["not an object", [1, 2], /^A test vector is a JSON object, not an array; give /],
    ["no inputs", { outputs: {} }, /^The test vector has no "inputs"; give /],
    ["a misspelt field", { inputs: { x: [[1, 2, 3, 4]] }, output: {} }, /^The test vector has a field "output"; it takes "inputs", "outputs" and "tolerance"$/],
    ["an unnamed OIP input", { inputs: [{ shape: [1], data: [1] }] }, /^The inputs list's item 1 is not \{"name", "shape", "datatype", "data"\} with a name$/],
    ["an input given twice", { inputs: [{ name: "x", data: [1] }, { name: "x", data: [1] }] }, /^Input "x" is given twice$/],
    ["binary tensor data", { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", parameters: { binary_data_size: 16 } }] }, /^Input "x" is sent as binary tensor data; a test vector gives its data as JSON numbers$/],
    ["no data", { inputs: { x: { shape: [1, 4] } } }, /^Input "x" gives no "data"$/],
    ["an unknown datatype", { inputs: [{ name: "x", shape: [1], datatype: "FLOAT", data: [1] }] }, /^Input "x" has datatype "FLOAT", which is not one of BOOL, /],
    ["a bad shape", { inputs: { x: { shape: [1, -4], data: [1] } } }, /^Input "x" has a shape that is not a list of whole numbers of 0 or more \(\[1,-4\]\)$/],
    ["text among numbers", { inputs: { x: [[1, "2", 3, 4]] } }, /^Input "x" holds the text "2" at position 1 where a number belongs$/],
    ["a negative tolerance", { inputs: { x: [[1, 2, 3, 4]] }, outputs: { y: [[1, 2, 3]] }, tolerance: -1 }, /^The test vector's tolerance must be a number of 0 or more, not -1$/],
    ["a tolerance without outputs", { inputs: { x: [[1, 2, 3, 4]] }, tolerance: 0.1 }, /^The test vector gives a tolerance but no expected outputs to hold to it/],
    ["arrays nested 40 deep", { inputs: { x: JSON.parse(`${"[".repeat(40)}1${"]".repeat(40)}`) } }, /^Input "x" nests arrays 40 deep; no model input has more than 32 dimensions$/],
  ])("refuses %s on its own, before any model is read", (_name, raw, problem) => {
    const parsed = parseTestVector(raw);
    expect(parsed.vector).toBeNull();
    expect(parsed.problems).toEqual([expect.stringMatching(problem)]);
  });
});

describe("test vectors against a model's declared inputs", () => {
  it.each([
    ["a missing input", mixed, { inputs: { ids: [1, 2] } }, 'Input "mask" is missing from the test vector (the model\'s inputs: "ids", "mask")'],
    ["an input the model lacks", mlp, { inputs: { x: [[1, 2, 3, 4]], z: [1] } }, 'Input "z" is not one of the model\'s inputs ("x")'],
    ["an output the model lacks", mlp, { inputs: { x: [[1, 2, 3, 4]] }, outputs: { logits: [1] } }, 'Output "logits" is not one of the model\'s outputs ("y")'],
    ["the wrong rank", mlp, { inputs: { x: [1, 2, 3, 4] } }, 'Input "x" has 2 dimensions [batch, 4] in the model, but the test vector gives 1 ([4])'],
    ["a fixed dimension of another size", mlp, { inputs: { x: [[1, 2, 3]] } }, 'Input "x" has shape [batch, 4] in the model, so axis 1 must be 4, but the test vector gives 3 (shape [1, 3])'],
    ["a symbol of two sizes", mixed, { inputs: { ids: [1, 2], mask: [true, false, true] } }, 'Input "mask" has axis 0 "n", which input "ids" gives as 2, but the test vector gives it 3 here (shape [3])'],
    ["a symbol the outputs give another size", mlp, { inputs: { x: [[1, 2, 3, 4]] }, outputs: { y: [[1, 2, 3], [4, 5, 6]] } }, 'Output "y" has axis 0 "batch", which input "x" gives as 1, but the test vector gives it 2 here (shape [2, 3])'],
    ["a fraction for an integer", mixed, { inputs: { ids: [1, 2.5], mask: [true, false] } }, 'Input "ids" is int64, which takes whole numbers from -9007199254740991 to 9007199254740991, but the test vector holds 2.5 at position 1'],
    ["a 2 for a bool", mixed, { inputs: { ids: [1, 2], mask: [1, 2] } }, 'Input "mask" is bool, which takes true/false or 1/0, but the test vector holds 2 at position 1'],
    ["a number beyond float32", mlp, { inputs: { x: [[1, 2, 3, 1e39]] } }, 'Input "x" is float32, which takes numbers within float32\'s range, but the test vector holds 1e+39 at position 3'],
    ["another datatype", mlp, { inputs: [{ name: "x", shape: [1, 4], datatype: "FP64", data: [1, 2, 3, 4] }] }, 'Input "x" is float32 (FP32) in the model, but the test vector gives float64 (FP64)'],
    ["an input type it cannot give", { inputs: [{ name: "t", type: "string", shape: [1] }], outputs: [] }, { inputs: { t: [1] } }, 'Input "t" is string in the model, which a test vector cannot give yet (it can give float16, float32, float64, int8, uint8, int16, uint16, int32, uint32, int64, uint64, bool)'],
  ])("refuses %s, naming the input and what is wrong", (_name, signature, raw, problem) => {
    expect(prepareTestVector(raw, signature)).toEqual({ vector: null, problems: [problem] });
  });

  it("takes any size for an unnamed dimension, and a symbol's size from wherever it first appears", () => {
    const unnamed: Signature = { inputs: [{ name: "x", type: "float32", shape: ["?", 4] }], outputs: [{ name: "y", type: "float32", shape: ["?", 3] }] };
    expect(prepareTestVector({ inputs: { x: [[1, 2, 3, 4], [5, 6, 7, 8]] }, outputs: { y: [[1, 2, 3]] } }, unnamed).problems).toEqual([]);
    expect(prepareTestVector({ inputs: { ids: [1, 2, 3], mask: [true, false, 1] } }, mixed).vector?.inputs.mask).toEqual({ type: "bool", shape: [3], data: [1, 0, 1] });
  });
});
