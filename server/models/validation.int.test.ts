import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  buildAbsurdDimModel,
  buildConvNet,
  buildExternalDataEscapeModel,
  buildExternalDataModel,
  buildFutureModel,
  buildGarbage,
  buildHalfInputModel,
  buildHalfOutputModel,
  buildLookupModel,
  buildMinusOneDimModel,
  buildMixedTypesModel,
  buildMlp,
  buildTruncatedModel,
  buildTwoInputModel,
  buildUnsupportedOpModel,
  encodeNpy,
  runMlpInJs,
  seededValues,
} from "../../tests/helpers/onnx-models";
import { encodeModel } from "./onnx-proto";
import { validateOnnxFile } from "./validation.service";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-onnx-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let counter = 0;
function writeModel(bytes: Buffer): string {
  const dir = path.join(root, `m${++counter}`, "model");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "model.onnx");
  fs.writeFileSync(file, bytes);
  return file;
}

const base = { runs: 5, timeoutMs: 60_000 };

/** Pids of this process's validation children, read from /proc. */
function validationChildren(): number[] {
  return fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        return ppid === process.pid && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("validation-child");
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe("validateOnnxFile on working models", () => {
  it("reports the MLP's signature with its symbolic batch, the dims used and timings", async () => {
    const steps: Array<[string, number]> = [];
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), dims: { batch: 5 }, onProgress: (step, fraction) => void steps.push([step, fraction]) });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report).toMatchObject({ opset: 17, irVersion: 8, producer: "gantry-tests 1", dims: { batch: 5 }, runs: 5, maxAbsDiff: null });
    expect(report.signature).toEqual({
      inputs: [{ name: "x", type: "float32", shape: ["batch", 4] }],
      outputs: [{ name: "y", type: "float32", shape: ["batch", 3] }],
    });
    expect(report.warmupMs).toBeGreaterThan(0);
    expect(report.p50Ms).toBeGreaterThan(0);
    expect(report.p95Ms).toBeGreaterThanOrEqual(report.p50Ms!);
    expect(report.peakRssBytes).toBeGreaterThan(0);
    expect(steps.map(([step]) => step)).toEqual(expect.arrayContaining(["Reading the model", "Loading the model in onnxruntime", "Warming up"]));
    expect(steps.every(([, fraction]) => fraction >= 0 && fraction <= 1)).toBe(true);
  });

  it("leaves initializers out of the inputs and takes a symbol not given as 1", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildTwoInputModel()) });
    expect(report.ok).toBe(true);
    expect(report.signature?.inputs.map((i) => i.name)).toEqual(["a", "b"]);
    expect(report.dims).toEqual({ batch: 1 });
  });

  it("shows an unnamed dynamic dimension as ? and runs it at 1, and a fixed one as its size", async () => {
    const unnamed = await validateOnnxFile({ ...base, file: writeModel(buildMlp("")), dims: { batch: 9 } });
    expect(unnamed.problems).toEqual([]);
    expect(unnamed.signature?.inputs[0].shape).toEqual(["?", 4]);
    expect(unnamed.dims).toEqual({});
    const fixed = await validateOnnxFile({ ...base, file: writeModel(buildMlp(2)) });
    expect(fixed.problems).toEqual([]);
    expect(fixed.signature?.outputs[0].shape).toEqual([2, 3]);
  });

  it("reads a dimension written as -1 as a free one (as onnxruntime does), not as a damaged file", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMinusOneDimModel()) });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.signature?.inputs[0]).toEqual({ name: "x", type: "float32", shape: ["?", 6] });
  });

  it("compares a float16 output with a test vector as numbers, not as its bit patterns", async () => {
    const testVector = { inputs: { x: [[1, 0.5], [-2, 0.25]] }, outputs: { y: [[1, 0.5], [-2, 0.25]] } };
    const report = await validateOnnxFile({ ...base, file: writeModel(buildHalfOutputModel()), testVector });
    expect(report.problems).toEqual([]);
    expect(report.signature?.outputs[0]).toEqual({ name: "y", type: "float16", shape: ["batch", 2] });
    expect(report.testVector).toMatchObject({ ok: true, problems: [] });
    expect(report.maxAbsDiff).toBe(0);
  });

  it("fills a float16 input, and feeds a test vector's numbers to it as halves", async () => {
    const testVector = { inputs: { x: [[1, 0.5], [-2, 0.333333]] }, outputs: { y: [[1, 0.5], [-2, 0.333251953125]] } };
    const report = await validateOnnxFile({ ...base, file: writeModel(buildHalfInputModel()), testVector });
    expect(report.problems).toEqual([]);
    expect(report.signature?.inputs[0]).toEqual({ name: "x", type: "float16", shape: ["batch", 2] });
    expect(report.testVector).toMatchObject({ ok: true, problems: [] });
    expect(report.maxAbsDiff).toBe(0);
    const beyond = await validateOnnxFile({ ...base, file: writeModel(buildHalfInputModel()), testVector: { inputs: { x: [[1, 70000]] } } });
    expect(beyond.testVector?.problems).toEqual(['Input "x" is float16, which takes numbers within float16\'s range, but the test vector holds 70000 at position 1']);
  });

  it("refuses an input that declares no shape at all, saying how to export one that does", async () => {
    const bytes = encodeModel({
      ir_version: 8,
      opset_import: [{ domain: "", version: 17 }],
      graph: { name: "g", node: [{ op_type: "Relu", input: ["x"], output: ["y"] }], input: [{ name: "x", type: { tensor_type: { elem_type: 1 } } }], output: [{ name: "y", type: { tensor_type: { elem_type: 1 } } }] },
    });
    const report = await validateOnnxFile({ ...base, file: writeModel(Buffer.from(bytes)) });
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([expect.stringMatching(/^Input "x" declares no shape, so how many dimensions it takes is unknown\. Export the model with its input shapes/)]);
    // A scalar input declares an empty shape, and is one.
    const scalar = encodeModel({
      ir_version: 8,
      opset_import: [{ domain: "", version: 17 }],
      graph: { name: "g", node: [{ op_type: "Relu", input: ["x"], output: ["y"] }], input: [{ name: "x", type: { tensor_type: { elem_type: 1, shape: { dim: [] } } } }], output: [{ name: "y", type: { tensor_type: { elem_type: 1, shape: { dim: [] } } } }] },
    });
    expect((await validateOnnxFile({ ...base, file: writeModel(Buffer.from(scalar)) })).problems).toEqual([]);
  });

  it("fills int64 and bool inputs", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMixedTypesModel()), dims: { n: 7 } });
    expect(report.problems).toEqual([]);
    expect(report.signature?.inputs).toEqual([
      { name: "ids", type: "int64", shape: ["n"] },
      { name: "mask", type: "bool", shape: ["n"] },
    ]);
    expect(report.dims).toEqual({ n: 7 });
  });

  it("runs a small conv net with the batch the user gave", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildConvNet()), dims: { batch: 3 } });
    expect(report.problems).toEqual([]);
    expect(report.signature?.inputs[0].shape).toEqual(["batch", 3, 16, 16]);
    expect(report.signature?.outputs[0].shape).toEqual(["batch", 4]);
    expect(report.dims).toEqual({ batch: 3 });
  });
});

describe("validateOnnxFile with a test vector", () => {
  const x = [seededValues(4, 11), seededValues(4, 12)];
  const expected = runMlpInJs(x);

  it("finds no difference from outputs computed independently", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector: { inputs: { x }, outputs: { y: expected } } });
    expect(report.problems).toEqual([]);
    expect(report.maxAbsDiff).not.toBeNull();
    expect(report.maxAbsDiff!).toBeLessThan(1e-5);
  });

  it("reports the difference from wrong outputs, and fails the vector — not the model — past the tolerance", async () => {
    const wrong = expected.map((row) => row.map((v, i) => (i === 1 ? v + 0.5 : v)));
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector: { inputs: { x }, outputs: { y: wrong } } });
    expect(report.ok).toBe(true);
    expect(report.maxAbsDiff).toBeCloseTo(0.5, 4);
    expect(report.testVector).toMatchObject({ ok: true, tolerance: null, problems: [] });
    const strict = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector: { inputs: { x }, outputs: { y: wrong }, tolerance: 0.01 } });
    expect(strict.ok).toBe(true);
    expect(strict.problems).toEqual([]);
    expect(strict.testVector).toMatchObject({ ok: false, tolerance: 0.01, problems: [expect.stringMatching(/more than the tolerance of 0\.01/)] });
    expect(strict.testVector!.maxAbsDiff).toBeCloseTo(0.5, 4);
  });

  it("takes the Open Inference Protocol form, with expected outputs in the form of an OIP response", async () => {
    const testVector = {
      inputs: [{ name: "x", shape: [2, 4], datatype: "FP32", data: x.flat() }],
      outputs: [{ name: "y", shape: [2, 3], datatype: "FP32", data: expected.flat() }],
    };
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector });
    expect(report.problems).toEqual([]);
    expect(report.testVector).toMatchObject({ ok: true, problems: [] });
    expect(report.testVector!.maxAbsDiff!).toBeLessThan(1e-5);
  });

  it("keeps the model valid, timed, when the vector does not fit it, naming each input and output", async () => {
    const report = await validateOnnxFile({
      ...base,
      file: writeModel(buildTwoInputModel()),
      testVector: { inputs: { a: [[1, 2, 3]], c: [1] }, outputs: { z: [1], y: [[1, 2, 3]] } },
    });
    expect(report.ok).toBe(true);
    expect(report.problems).toEqual([]);
    expect(report.runs).toBe(5);
    expect(report.p50Ms).toBeGreaterThan(0);
    expect(report.testVector?.ok).toBe(false);
    expect(report.testVector?.problems).toEqual([
      'Input "b" is missing from the test vector (the model\'s inputs: "a", "b")',
      'Input "c" is not one of the model\'s inputs ("a", "b")',
      'Output "z" is not one of the model\'s outputs ("y")',
    ]);
  });

  it("keeps the model valid when it throws on the vector's inputs at run time", async () => {
    // ids 0–3 (what validation generates) run; id 9 passes every check of the vector's form and
    // shape, and onnxruntime throws on it.
    const report = await validateOnnxFile({ ...base, file: writeModel(buildLookupModel()), dims: { n: 3 }, testVector: { inputs: { ids: [0, 9] } } });
    expect(report.ok).toBe(true);
    expect(report.problems).toEqual([]);
    expect(report.p50Ms).toBeGreaterThan(0);
    expect(report.testVector).toMatchObject({ ok: false, maxAbsDiff: null, problems: [expect.stringMatching(/^onnxruntime could not run the test vector's inputs: .*out of.*bounds/i)] });
  });

  it.each([
    ["a ragged array", { inputs: { x: [[1, 2, 3, 4], [1]] }, outputs: {} }, 'Input "x" is ragged: rows at one depth differ in length'],
    ["a string for an array", { inputs: { x: "nope" }, outputs: {} }, 'Input "x" is the text "nope", not a number, a nested array of numbers or {"shape", "data"}'],
    ["a shape that does not fit", { inputs: { x: { shape: [1, 5], data: [1, 2, 3, 4, 5] } } }, 'Input "x" has shape [batch, 4] in the model, so axis 1 must be 4, but the test vector gives 5 (shape [1, 5])'],
    ["shape and data disagreeing", { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3] }] }, 'Input "x" has 3 values, but its shape [1, 4] holds 4'],
    ["the wrong datatype", { inputs: [{ name: "x", shape: [1, 4], datatype: "INT64", data: [1, 2, 3, 4] }] }, 'Input "x" is float32 (FP32) in the model, but the test vector gives int64 (INT64)'],
  ])("reports a test vector with %s as the vector's problem, the model staying valid", async (_name, testVector, problem) => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector });
    expect(report.ok).toBe(true);
    expect(report.p50Ms).toBeGreaterThan(0);
    expect(report.testVector).toMatchObject({ ok: false, problems: [problem] });
  });

  it("runs a vector with inputs only, and says the vector was not run when the model itself fails", async () => {
    const inputsOnly = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector: { inputs: { x } } });
    expect(inputsOnly.testVector).toEqual({ ok: true, maxAbsDiff: null, tolerance: null, problems: [] });
    const broken = await validateOnnxFile({ ...base, file: writeModel(buildGarbage()), testVector: { inputs: { x } } });
    expect(broken.ok).toBe(false);
    expect(broken.testVector).toMatchObject({ ok: false, problems: ["The test vector was not run: the model itself did not pass validation."] });
  });

  it("reads inputs and expected outputs from .npy files", async () => {
    const testVector = {
      inputs: { x: encodeNpy("<f4", [2, 4], new Float32Array(x.flat())) },
      outputs: { y: encodeNpy("<f8", [2, 3], new Float64Array(expected.flat())) },
    };
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector });
    expect(report.problems).toEqual([]);
    expect(report.maxAbsDiff!).toBeLessThan(1e-5);
  });

  it.each([
    ["truncated", encodeNpy("<f4", [2, 4], new Float32Array(8)).subarray(0, 100), "it holds fewer bytes than its shape needs — it looks truncated"],
    ["absurdly shaped", encodeNpy("<f4", [2 ** 40, 4], new Float32Array(8)), "it holds fewer bytes than its shape needs — it looks truncated"],
    ["big-endian", encodeNpy(">f4", [2, 4], new Float32Array(8)), "it is big-endian; save it little-endian"],
    ["Fortran-ordered", encodeNpy("<f4", [2, 4], new Float32Array(8), { fortranOrder: true }), "it is stored in Fortran order; save a C-ordered array (numpy.ascontiguousarray)"],
    ["not .npy at all", Buffer.from("hello world, not numpy"), "it does not start like a .npy file"],
  ])("refuses a .npy array that is %s", async (_name, npy, reason) => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector: { inputs: { x: npy }, outputs: {} } });
    expect(report.ok).toBe(true);
    expect(report.testVector?.problems).toEqual([`Input "x" is not a readable .npy array: ${reason}`]);
  });

  it("refuses a .npy array holding NaN", async () => {
    const npy = encodeNpy("<f4", [1, 4], new Float32Array([1, Number.NaN, 0, 0]));
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector: { inputs: { x: npy }, outputs: {} } });
    expect(report.testVector?.problems).toEqual(['Input "x" holds NaN or infinite values, which cannot be compared']);
  });
});

describe("validateOnnxFile on broken and hostile files", () => {
  it.each([
    ["a truncated file", buildTruncatedModel, /^This is not an ONNX model: the file ends before the model does — it looks truncated\.$/],
    ["random bytes", buildGarbage, /^This is not an ONNX model: its bytes do not decode as ONNX protobuf/],
    ["an absurd dimension", buildAbsurdDimModel, /^Input "x" declares dimension 1099511627776 at axis 1, outside 0 to 2\^31/],
    ["external data outside its folder", buildExternalDataEscapeModel, /^Tensor "w" points its external data at "\.\.\/\.\.\/etc\/passwd", outside the model's folder/],
    ["an unsupported operator", buildUnsupportedOpModel, /^onnxruntime could not load the model: .*com\.example:NoSuchOp/],
    // onnxruntime words these with its C++ source line, function signature and the file's temporary path.
    ["a future opset", () => buildFutureModel("opset"), /^onnxruntime could not load the model: the model uses opset 99 of ai\.onnx, newer than this onnxruntime supports \(up to \d+\) — export it with opset \d+ or lower$/],
    ["a future IR version", () => buildFutureModel("ir"), /^onnxruntime could not load the model: the model's IR version is 99, newer than this onnxruntime reads \(up to \d+\)/],
  ])("fails %s with a clear reason", async (_name, build, reason) => {
    const report = await validateOnnxFile({ ...base, file: writeModel(build()) });
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatch(reason);
    expect(report.problems[0]).not.toMatch(/onnxruntime::|onnxruntime_src|std::|\/tmp\/|gantry-onnx-/);
    expect(report.p50Ms).toBeNull();
  });

  it("refuses dims that would make an input too large, before running anything", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), dims: { batch: 2 ** 27 } });
    expect(report.ok).toBe(false);
    expect(report.signature?.inputs[0].name).toBe("x");
    expect(report.problems[0]).toBe(`Input "x" would hold ${2 ** 29} elements with shape [${2 ** 27}, 4], more than the ${2 ** 28} allowed — give smaller values for its dynamic dimensions.`);
  });

  it("says how to make a model whose weights are in a separate file into the one file a version is", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildExternalDataModel("weights.bin")) });
    expect(report.problems[0]).toMatch(/^Tensor "w" keeps its data in a separate file, "weights.bin", and a model version is one .onnx file. Save the model with its weights inside \(onnx.save_model/);
  });

  it("loads external data that sits beside the model", async () => {
    const file = writeModel(buildExternalDataModel("weights.bin"));
    fs.writeFileSync(path.join(path.dirname(file), "weights.bin"), Buffer.from(new Float32Array(16).fill(0.5).buffer));
    const report = await validateOnnxFile({ ...base, file, testVector: { inputs: { x: [[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]] }, outputs: { y: [[1.5, 1.5, 1.5, 1.5], [0.5, 0.5, 0.5, 0.5], [1.5, 1.5, 1.5, 1.5], [1.5, 1.5, 1.5, 1.5]] } } });
    expect(report.problems).toEqual([]);
    expect(report.maxAbsDiff).toBe(0);
  });
});

describe("validateOnnxFile keeps onnxruntime in a child process", () => {
  it("stops a child that outlives the timeout and says which setting to raise", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), timeoutMs: 1 });
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatch(/did not finish within 0\.001 s .*raise MODEL_VALIDATION_TIMEOUT/);
    expect(report.signature).not.toBeNull();
    expect(validationChildren()).toEqual([]);
  });

  it("rejects with an AbortError when the signal aborts, and kills the child", async () => {
    const controller = new AbortController();
    const run = validateOnnxFile({
      ...base,
      file: writeModel(buildConvNet()),
      runs: 1_000_000,
      signal: controller.signal,
      onProgress: (step) => void (step.startsWith("Timing") && controller.abort()),
    });
    await expect(run).rejects.toMatchObject({ name: "AbortError" });
    expect(validationChildren()).toEqual([]);
    const aborted = AbortSignal.abort();
    await expect(validateOnnxFile({ ...base, file: writeModel(buildMlp()), signal: aborted })).rejects.toMatchObject({ name: "AbortError" });
  });

  it("survives the child dying mid-run and validates the next model", async () => {
    let killed = false;
    const report = await validateOnnxFile({
      ...base,
      file: writeModel(buildConvNet()),
      runs: 1_000_000,
      onProgress: (step) => {
        if (killed || !step.startsWith("Timing")) return;
        killed = true;
        for (const pid of validationChildren()) process.kill(pid, "SIGKILL");
      },
    });
    expect(killed).toBe(true);
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatch(/^The onnxruntime process was killed by SIGKILL while timing run 1 of 1000000 — .*the worker itself is unaffected\.$/);
    const next = await validateOnnxFile({ ...base, file: writeModel(buildMlp()) });
    expect(next.ok).toBe(true);
  });
});
