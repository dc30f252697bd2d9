import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  buildAbsurdDimModel,
  buildConvNet,
  buildExternalDataEscapeModel,
  buildExternalDataModel,
  buildGarbage,
  buildMixedTypesModel,
  buildMlp,
  buildTruncatedModel,
  buildTwoInputModel,
  buildUnsupportedOpModel,
  runMlpInJs,
  seededValues,
} from "../../tests/helpers/onnx-models";
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

  it("leaves initializers out of the inputs and takes an unnamed symbol as 1", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildTwoInputModel()) });
    expect(report.ok).toBe(true);
    expect(report.signature?.inputs.map((i) => i.name)).toEqual(["a", "b"]);
    expect(report.dims).toEqual({ batch: 1 });
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

  it("reports the difference from wrong outputs, and fails past the tolerance", async () => {
    const wrong = expected.map((row) => row.map((v, i) => (i === 1 ? v + 0.5 : v)));
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector: { inputs: { x }, outputs: { y: wrong } } });
    expect(report.ok).toBe(true);
    expect(report.maxAbsDiff).toBeCloseTo(0.5, 4);
    const strict = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector: { inputs: { x }, outputs: { y: wrong }, tolerance: 0.01 } });
    expect(strict.ok).toBe(false);
    expect(strict.problems[0]).toMatch(/more than the tolerance of 0\.01/);
  });

  it("names a missing input, an unknown output and a ragged array", async () => {
    const report = await validateOnnxFile({
      ...base,
      file: writeModel(buildTwoInputModel()),
      testVector: { inputs: { a: [[1, 2, 3]], c: [1] }, outputs: { z: [1], y: [[1, 2], [3]] } },
    });
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual(
      expect.arrayContaining([
        'The test vector gives no values for input "b".',
        expect.stringContaining('names input "c", which the model does not have (its inputs: a, b)'),
        expect.stringContaining('names output "z"'),
        expect.stringContaining('output "y" is ragged'),
      ]),
    );
    expect(report.runs).toBe(0);
  });

  it("refuses a test vector of the wrong form", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), testVector: { inputs: { x: "nope" } } });
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatch(/^The test vector is not of the form/);
  });
});

describe("validateOnnxFile on broken and hostile files", () => {
  it.each([
    ["a truncated file", buildTruncatedModel, /^This is not an ONNX model: the file ends before the model does — it looks truncated\.$/],
    ["random bytes", buildGarbage, /^This is not an ONNX model: its bytes do not decode as ONNX protobuf/],
    ["an absurd dimension", buildAbsurdDimModel, /^Input "x" declares dimension 1099511627776 at axis 1, outside 0 to 2\^31/],
    ["external data outside its folder", buildExternalDataEscapeModel, /^Tensor "w" points its external data at "\.\.\/\.\.\/etc\/passwd", outside the model's folder/],
    ["an unsupported operator", buildUnsupportedOpModel, /^onnxruntime could not load the model: .*com\.example:NoSuchOp/],
  ])("fails %s with a clear reason", async (_name, build, reason) => {
    const report = await validateOnnxFile({ ...base, file: writeModel(build()) });
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatch(reason);
    expect(report.p50Ms).toBeNull();
  });

  it("refuses dims that would make an input too large, before running anything", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildMlp()), dims: { batch: 2 ** 27 } });
    expect(report.ok).toBe(false);
    expect(report.signature?.inputs[0].name).toBe("x");
    expect(report.problems[0]).toBe(`Input "x" would hold ${2 ** 29} elements with shape [${2 ** 27}, 4], more than the ${2 ** 28} allowed — give smaller values for its dynamic dimensions.`);
  });

  it("gives external data that is simply missing its own reason", async () => {
    const report = await validateOnnxFile({ ...base, file: writeModel(buildExternalDataModel("weights.bin")) });
    expect(report.problems[0]).toBe('Tensor "w" keeps its data in "weights.bin", which is missing — upload it beside the model.');
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
