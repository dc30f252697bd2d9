import fs from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { AppError } from "../errors";
import { killOwned, spawnOwned } from "../process/owned-child";
import { recogniseNotAModel } from "./not-a-model";
import { decodeModel, type OnnxGraph, type OnnxModel, type OnnxTensor } from "./onnx-proto";
import { tensorSpec } from "./onnx-signature";
import { prepareTestVector } from "./test-vector";
import { childMessageSchema, type ChildMessage, type ChildRequest, type TestVectorOutcome, type ValidationReport } from "./validation.schemas";

const MAX_DIM = 2 ** 31;
const DEFAULT_MAX_INPUT_ELEMENTS = 2 ** 28;
const MAX_PROTOBUF_BYTES = 2 ** 31 - 1;

export type ValidateOnnxFileOptions = {
  /** Path of the .onnx file; external data is looked for beside it. */
  file: string;
  /** Values for symbolic input dimensions by name; any other symbol is taken as 1. */
  dims?: Record<string, number>;
  /** Timed runs after the warm-up. */
  runs: number;
  /** Inputs and expected outputs in any form test-vector.ts reads; its outcome never changes the model's verdict. */
  testVector?: unknown;
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: (step: string, fraction: number) => unknown;
  /** Largest element count one generated input may have. */
  maxInputElements?: number;
};

type ResolvedInput = ChildRequest["inputs"][number];

export type OnnxInspection = { report: ValidationReport; inputs: ResolvedInput[] };

function emptyReport(): ValidationReport {
  return { ok: false, opset: null, producer: null, irVersion: null, signature: null, dims: {}, warmupMs: null, runs: 0, p50Ms: null, p95Ms: null, peakRssBytes: null, maxAbsDiff: null, problems: [], testVector: null };
}

/** Every tensor stored in a graph and its subgraphs: initializers and tensor attributes. */
function storedTensors(graph: OnnxGraph | undefined, out: OnnxTensor[] = []): OnnxTensor[] {
  if (!graph) return out;
  out.push(...(graph.initializer ?? []));
  for (const node of graph.node ?? []) {
    for (const attribute of node.attribute ?? []) {
      if (attribute.t) out.push(attribute.t);
      out.push(...(attribute.tensors ?? []));
      storedTensors(attribute.g, out);
      for (const g of attribute.graphs ?? []) storedTensors(g, out);
    }
  }
  return out;
}

function checkDims(graph: OnnxGraph, problems: string[]): void {
  const declared: Array<[string, Array<number | string>]> = [
    ...(graph.input ?? []).map((v): [string, Array<number | string>] => [`Input "${v.name}"`, tensorSpec(v).shape]),
    ...(graph.output ?? []).map((v): [string, Array<number | string>] => [`Output "${v.name}"`, tensorSpec(v).shape]),
    ...(graph.value_info ?? []).map((v): [string, Array<number | string>] => [`Value "${v.name}"`, tensorSpec(v).shape]),
    ...storedTensors(graph).map((t): [string, Array<number | string>] => [`Tensor "${t.name}"`, t.dims ?? []]),
  ];
  for (const [what, shape] of declared) {
    shape.forEach((d, axis) => {
      if (typeof d === "number" && (d > MAX_DIM || d < 0)) {
        problems.push(`${what} declares dimension ${d} at axis ${axis}, outside 0 to 2^31 — the file is damaged or not a real model.`);
      }
    });
  }
}

async function checkExternalData(graph: OnnxGraph, modelDir: string, problems: string[]): Promise<void> {
  const realDir = await fs.realpath(modelDir);
  for (const tensor of storedTensors(graph)) {
    const entries = tensor.external_data ?? [];
    if (tensor.data_location !== 1 && entries.length === 0) continue;
    const location = entries.find((e) => e.key === "location")?.value;
    const what = `Tensor "${tensor.name}"`;
    if (!location) {
      problems.push(`${what} keeps its data in an external file but does not say which.`);
      continue;
    }
    const resolved = path.resolve(realDir, location);
    if (path.isAbsolute(location) || path.win32.isAbsolute(location) || !resolved.startsWith(realDir + path.sep)) {
      problems.push(`${what} points its external data at "${location}", outside the model's folder — external data must be a relative path next to the model.`);
      continue;
    }
    const real = await fs.realpath(resolved).catch(() => null);
    if (!real) problems.push(`${what} keeps its data in a separate file, "${location}", and a model version is one .onnx file. Save the model with its weights inside (onnx.save_model(model, "model.onnx", save_as_external_data=False), or torch.onnx.export with external_data=False) and send that file; it can be up to 2 GiB.`);
    else if (!real.startsWith(realDir + path.sep)) problems.push(`${what} keeps its data in "${location}", a link leading outside the model's folder.`);
  }
}

/** Reads what can be known without running the model, and refuses files that must not be run. */
export async function inspectOnnxModel({ bytes, modelDir, dims = {}, maxInputElements = DEFAULT_MAX_INPUT_ELEMENTS }: { bytes: Uint8Array; modelDir: string; dims?: Record<string, number>; maxInputElements?: number }): Promise<OnnxInspection> {
  const report = emptyReport();
  let model: OnnxModel;
  try {
    model = decodeModel(bytes);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const notAModel = recogniseNotAModel(bytes);
    report.problems.push(notAModel ?? (/index out of range/.test(reason) ? "This is not an ONNX model: the file ends before the model does — it looks truncated." : `This is not an ONNX model: its bytes do not decode as ONNX protobuf (${reason}).`));
    return { report, inputs: [] };
  }
  const graph = model.graph;
  if (!model.ir_version || !graph || !(graph.output ?? []).length) {
    report.problems.push(`This is not an ONNX model: it has no ${!model.ir_version ? "IR version" : !graph ? "graph" : "graph outputs"}.`);
    return { report, inputs: [] };
  }
  report.irVersion = model.ir_version;
  report.opset = (model.opset_import ?? []).find((o) => !o.domain || o.domain === "ai.onnx")?.version ?? null;
  report.producer = `${model.producer_name ?? ""} ${model.producer_version ?? ""}`.trim() || null;
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputSpecs = (graph.input ?? []).filter((v) => !initializers.has(v.name)).map(tensorSpec);
  report.signature = { inputs: inputSpecs, outputs: (graph.output ?? []).map(tensorSpec) };

  checkDims(graph, report.problems);
  // An input with no shape at all (not even a scalar's empty one) has a rank nobody can check a
  // request against: it would be validated on a scalar and then refuse every real request.
  for (const input of (graph.input ?? []).filter((v) => !initializers.has(v.name ?? ""))) {
    if (input.type?.tensor_type && !input.type.tensor_type.shape) {
      report.problems.push(`Input "${input.name}" declares no shape, so how many dimensions it takes is unknown. Export the model with its input shapes (torch.onnx.export writes them; onnx.shape_inference.infer_shapes or a tool like onnxsim can add them) and upload it again.`);
    }
  }
  await checkExternalData(graph, modelDir, report.problems);
  if (report.problems.length) return { report, inputs: [] };

  const inputs = inputSpecs.map((spec) => {
    const shape = spec.shape.map((d) => {
      if (typeof d === "number") return d;
      if (d === "?") return 1;
      report.dims[d] = dims[d] ?? 1;
      return report.dims[d];
    });
    const elements = shape.reduce((a, b) => a * b, 1);
    if (elements > maxInputElements) {
      report.problems.push(`Input "${spec.name}" would hold ${elements} elements with shape [${shape.join(", ")}], more than the ${maxInputElements} allowed — give smaller values for its dynamic dimensions.`);
    }
    return { name: spec.name, type: spec.type, shape };
  });
  return { report, inputs };
}

function childCommand(): { command: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  // Run as TypeScript (tests, tsx) the child needs tsx's loader; compiled, it is plain JS.
  if (here.endsWith(".ts")) {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
    return { command: process.execPath, args: ["--import", tsx, path.join(path.dirname(here), "validation-child.ts")] };
  }
  return { command: process.execPath, args: [path.join(path.dirname(here), "validation-child.js")] };
}

/**
 * Validates an ONNX model: a static check in this process, then a load, a warm-up, timed runs
 * and an optional test-vector run in a child process that may crash without harm.
 * Resolves with a report (ok false when anything is wrong with the model); rejects when
 * `signal` aborts, or with INTERNAL when the child cannot be started.
 *
 * The model's verdict (`ok`, `problems`) is what it earns on its own: it decodes, loads, and
 * runs on generated inputs. The test vector's outcome is reported beside it (`testVector`)
 * and never changes that verdict: a vector that does not fit, that the model throws on, whose
 * outputs differ past its tolerance, or that crashes onnxruntime after the timed runs, is the
 * vector's failure.
 */
export async function validateOnnxFile({ file, dims = {}, runs, testVector, timeoutMs, signal, onProgress, maxInputElements }: ValidateOnnxFileOptions): Promise<ValidationReport> {
  signal?.throwIfAborted();
  let progressChain: Promise<unknown> = Promise.resolve();
  // A progress reporter that fails must not fail the validation, nor run out of order.
  const progress = (step: string, fraction: number) => {
    progressChain = progressChain.then(() => onProgress?.(step, fraction)).catch(() => undefined);
  };

  progress("Reading the model", 0);
  const stat = await fs.stat(file).catch(() => null);
  if (!stat?.isFile()) throw new AppError("NOT_FOUND", `The model file to validate (${path.basename(file)}) is missing.`);
  if (stat.size > MAX_PROTOBUF_BYTES) {
    return withVectorNotRun({ ...emptyReport(), problems: [`The model file is ${stat.size} bytes, over the 2 GiB one ONNX file can hold, and a model version is one .onnx file. Make the model smaller (quantise its weights to int8 or float16) to bring it under 2 GiB.`] }, testVector);
  }
  const { report, inputs } = await inspectOnnxModel({ bytes: await fs.readFile(file), modelDir: path.dirname(file), dims, maxInputElements });
  const request: ChildRequest = { modelPath: path.resolve(file), inputs, runs };
  let vectorOutcome: TestVectorOutcome | null = null;
  if (!report.problems.length && testVector !== undefined && report.signature) {
    const prepared = prepareTestVector(testVector, report.signature);
    if (prepared.vector) request.testVector = prepared.vector;
    else vectorOutcome = { ok: false, maxAbsDiff: null, tolerance: null, problems: prepared.problems };
  }
  if (!report.problems.length) {
    signal?.throwIfAborted();
    progress("Starting onnxruntime", 0.05);
    const outcome = await runChild(request, { timeoutMs, signal, progress });
    const timed = outcome.timings;
    if (timed) Object.assign(report, { warmupMs: timed.warmupMs, runs: timed.runs, p50Ms: timed.p50Ms, p95Ms: timed.p95Ms, peakRssBytes: timed.peakRssBytes });
    if (outcome.kind === "result") {
      report.peakRssBytes = outcome.message.peakRssBytes;
      const ran = outcome.message.testVector;
      if (ran && request.testVector) {
        const tolerance = request.testVector.tolerance ?? null;
        const problems = [...ran.problems];
        if (tolerance !== null && ran.maxAbsDiff !== null && ran.maxAbsDiff > tolerance) {
          problems.push(`The outputs differ from the test vector by up to ${ran.maxAbsDiff}, more than the tolerance of ${tolerance}.`);
        }
        report.maxAbsDiff = ran.maxAbsDiff;
        vectorOutcome = { ok: problems.length === 0, maxAbsDiff: ran.maxAbsDiff, tolerance, problems };
      }
    } else if (outcome.timings && request.testVector) {
      // The model was timed, then the process ended while running the vector: the vector's failure.
      report.peakRssBytes = outcome.peakRssBytes ?? report.peakRssBytes;
      vectorOutcome = { ok: false, maxAbsDiff: null, tolerance: request.testVector.tolerance ?? null, problems: [outcome.problem] };
    } else {
      report.peakRssBytes = outcome.peakRssBytes ?? null;
      report.problems.push(outcome.problem);
    }
  }
  report.ok = report.problems.length === 0;
  report.testVector = vectorOutcome;
  withVectorNotRun(report, testVector);
  progress(report.ok ? "Validated" : "Validation found problems", 1);
  await progressChain;
  return report;
}

/** A vector given to a model that did not pass is reported as not run, rather than left out. */
function withVectorNotRun(report: ValidationReport, testVector: unknown): ValidationReport {
  if (testVector !== undefined && report.testVector === null && !report.ok) {
    report.testVector = { ok: false, maxAbsDiff: null, tolerance: null, problems: ["The test vector was not run: the model itself did not pass validation."] };
  }
  return report;
}

type ChildTimings = Extract<ChildMessage, { type: "timings" }>;
/** `timings` is set once the model was timed, so a failure after it is the test vector's. */
type ChildOutcome =
  | { kind: "result"; message: Extract<ChildMessage, { type: "result" }>; timings: ChildTimings }
  | { kind: "failure"; problem: string; peakRssBytes?: number; timings: ChildTimings | null };

function runChild(request: ChildRequest, { timeoutMs, signal, progress }: { timeoutMs: number; signal?: AbortSignal; progress: (step: string, fraction: number) => void }): Promise<ChildOutcome> {
  return new Promise((resolve, reject) => {
    const { command, args } = childCommand();
    // Its own process group, dying with this process: a Ctrl-C at the terminal or a killed
    // worker never leaves it running on, nor kills it under a validation that should resume.
    const child = spawnOwned(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let outcome: ChildOutcome | null = null;
    let timings: ChildTimings | null = null;
    let lastStep = "starting";
    let stopped: "timeout" | "abort" | null = null;
    let pending = "";
    let stderrTail = "";

    const stop = (why: "timeout" | "abort") => {
      stopped ??= why;
      killOwned(child);
    };
    const timer = setTimeout(() => stop("timeout"), timeoutMs);
    const onAbort = () => stop("abort");
    signal?.addEventListener("abort", onAbort, { once: true });

    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      if (pending.length > 1_000_000) pending = "";
      for (const line of lines) {
        if (!line.startsWith("{")) continue;
        let parsed;
        try {
          parsed = childMessageSchema.safeParse(JSON.parse(line));
        } catch {
          continue;
        }
        if (!parsed.success) continue;
        const message = parsed.data;
        if (message.type === "progress") {
          lastStep = message.step.toLowerCase();
          progress(message.step, message.fraction);
        } else if (message.type === "timings") timings = message;
        else if (message.type === "result") outcome = { kind: "result", message, timings: { type: "timings", warmupMs: message.warmupMs, runs: message.runs, p50Ms: message.p50Ms, p95Ms: message.p95Ms, peakRssBytes: message.peakRssBytes } };
        else outcome = { kind: "failure", problem: message.problem, peakRssBytes: message.peakRssBytes, timings };
      }
    });
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-2000);
    });
    child.stdin!.on("error", () => undefined); // the child may die before reading its request
    child.stdin!.end(JSON.stringify(request));

    child.on("error", (error) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      reject(new AppError("INTERNAL", `Could not start the model validation process: ${error.message}`, { cause: error }));
    });
    child.on("close", (code, exitSignal) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (stopped === "abort") return reject(signal?.reason instanceof Error ? signal.reason : new DOMException("Model validation was cancelled", "AbortError"));
      if (stopped === "timeout") {
        return resolve({ kind: "failure", timings, problem: `${timings ? "The test vector" : "Validation"} did not finish within ${timeoutMs / 1000} s (stopped while ${lastStep}) — if the model needs longer, raise MODEL_VALIDATION_TIMEOUT (seconds).` });
      }
      if (outcome) return resolve(outcome);
      const how = exitSignal ? `was killed by ${exitSignal}` : `exited with code ${code}`;
      // onnxruntime colours its log lines; the report is plain text.
      const detail = stderrTail.replace(/\x1b\[[0-9;]*m/g, "").trim().split("\n").slice(-3).join(" ").slice(-600);
      resolve({
        kind: "failure",
        timings,
        problem: `The onnxruntime process ${how} while ${lastStep}${detail ? ` (${detail})` : ""} — the model crashes onnxruntime or needs more memory than this machine has; the worker itself is unaffected.`,
      });
    });
  });
}
