import fs from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { AppError } from "../errors";
import { killOwned, spawnOwned } from "../process/owned-child";
import { decodeModel, onnxElementTypes, type OnnxGraph, type OnnxModel, type OnnxTensor, type OnnxValueInfo } from "./onnx-proto";
import {
  childMessageSchema,
  testVectorSchema,
  type ChildMessage,
  type ChildRequest,
  type TensorSpec,
  type ValidationReport,
} from "./validation.schemas";

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
  /** { inputs: { name: array }, outputs: { name: array }, tolerance? }, each array nested JSON or .npy bytes. */
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
  return { ok: false, opset: null, producer: null, irVersion: null, signature: null, dims: {}, warmupMs: null, runs: 0, p50Ms: null, p95Ms: null, peakRssBytes: null, maxAbsDiff: null, problems: [] };
}

function tensorSpec(info: OnnxValueInfo): TensorSpec {
  const name = info.name ?? "";
  const tensor = info.type?.tensor_type;
  if (!tensor) return { name, type: info.type?.sequence_type ? "sequence" : info.type?.map_type ? "map" : "unknown", shape: [] };
  const type = onnxElementTypes[tensor.elem_type ?? 0] ?? `type ${tensor.elem_type ?? 0}`;
  return { name, type, shape: (tensor.shape?.dim ?? []).map((d) => d.dim_param || (d.dim_value ?? "?")) };
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
    if (!real) problems.push(`${what} keeps its data in "${location}", which is missing — upload it beside the model.`);
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
    report.problems.push(/index out of range/.test(reason) ? "This is not an ONNX model: the file ends before the model does — it looks truncated." : `This is not an ONNX model: its bytes do not decode as ONNX protobuf (${reason}).`);
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

/** Checks a test vector against the signature and gives the child its arrays with their types. */
function prepareTestVector(raw: unknown, signature: NonNullable<ValidationReport["signature"]>, problems: string[]): ChildRequest["testVector"] {
  const parsed = testVectorSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length ? `its ${issue.path.join(".")}` : "it";
    problems.push(`The test vector cannot be used: ${where} ${issue.code === "custom" ? issue.message : `is not as expected (${issue.message})`}; give { inputs: { name: array }, outputs: { name: array } }.`);
    return undefined;
  }
  const out: NonNullable<ChildRequest["testVector"]> = { inputs: {}, outputs: {}, tolerance: parsed.data.tolerance };
  for (const [side, specs] of [["inputs", signature.inputs], ["outputs", signature.outputs]] as const) {
    const given = parsed.data[side];
    const names = specs.map((s) => s.name);
    if (side === "inputs") for (const name of names) if (!(name in given)) problems.push(`The test vector gives no values for input "${name}".`);
    for (const [name, flat] of Object.entries(given)) {
      const spec = specs.find((s) => s.name === name);
      if (spec) out[side][name] = { type: spec.type, ...flat };
      else problems.push(`The test vector names ${side.slice(0, -1)} "${name}", which the model does not have (its ${side}: ${names.join(", ")}).`);
    }
  }
  return out;
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
 * and an optional test-vector comparison in a child process that may crash without harm.
 * Resolves with a report (ok false when anything is wrong with the model); rejects when
 * `signal` aborts, or with INTERNAL when the child cannot be started.
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
    return { ...emptyReport(), problems: [`The model file is ${stat.size} bytes, over the 2 GiB an ONNX protobuf can hold — export its weights as external data.`] };
  }
  const { report, inputs } = await inspectOnnxModel({ bytes: await fs.readFile(file), modelDir: path.dirname(file), dims, maxInputElements });
  const request: ChildRequest = { modelPath: path.resolve(file), inputs, runs };
  if (!report.problems.length && testVector !== undefined && report.signature) {
    request.testVector = prepareTestVector(testVector, report.signature, report.problems);
  }
  if (!report.problems.length) {
    signal?.throwIfAborted();
    progress("Starting onnxruntime", 0.05);
    const outcome = await runChild(request, { timeoutMs, signal, progress });
    if (outcome.kind === "result") {
      const { type: _type, problems, ...figures } = outcome.message;
      Object.assign(report, figures);
      report.problems.push(...problems);
      const tolerance = request.testVector?.tolerance;
      if (tolerance !== undefined && figures.maxAbsDiff !== null && figures.maxAbsDiff > tolerance) {
        report.problems.push(`The outputs differ from the test vector by up to ${figures.maxAbsDiff}, more than the tolerance of ${tolerance}.`);
      }
    } else {
      report.peakRssBytes = outcome.peakRssBytes ?? null;
      report.problems.push(outcome.problem);
    }
  }
  report.ok = report.problems.length === 0;
  progress(report.ok ? "Validated" : "Validation found problems", 1);
  await progressChain;
  return report;
}

type ChildOutcome =
  | { kind: "result"; message: Extract<ChildMessage, { type: "result" }> }
  | { kind: "failure"; problem: string; peakRssBytes?: number };

function runChild(request: ChildRequest, { timeoutMs, signal, progress }: { timeoutMs: number; signal?: AbortSignal; progress: (step: string, fraction: number) => void }): Promise<ChildOutcome> {
  return new Promise((resolve, reject) => {
    const { command, args } = childCommand();
    // Its own process group, dying with this process: a Ctrl-C at the terminal or a killed
    // worker never leaves it running on, nor kills it under a validation that should resume.
    const child = spawnOwned(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let outcome: ChildOutcome | null = null;
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
        } else if (message.type === "result") outcome = { kind: "result", message };
        else outcome = { kind: "failure", problem: message.problem, peakRssBytes: message.peakRssBytes };
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
        return resolve({ kind: "failure", problem: `Validation did not finish within ${timeoutMs / 1000} s (stopped while ${lastStep}) — if the model needs longer, raise MODEL_VALIDATION_TIMEOUT (seconds).` });
      }
      if (outcome) return resolve(outcome);
      const how = exitSignal ? `was killed by ${exitSignal}` : `exited with code ${code}`;
      // onnxruntime colours its log lines; the report is plain text.
      const detail = stderrTail.replace(/\x1b\[[0-9;]*m/g, "").trim().split("\n").slice(-3).join(" ").slice(-600);
      resolve({
        kind: "failure",
        problem: `The onnxruntime process ${how} while ${lastStep}${detail ? ` (${detail})` : ""} — the model crashes onnxruntime or needs more memory than this machine has; the worker itself is unaffected.`,
      });
    });
  });
}
