// Runs one model under onnxruntime for validation.service.ts, in a process of its own so that a
// native crash, an abort or running out of memory ends this process and not the worker.
// Protocol: one ChildRequest as JSON on stdin; JSON lines (ChildMessage) on stdout, the last
// being "result" or "failure".
import { performance } from "node:perf_hooks";
import * as ort from "onnxruntime-node";
import { float16Values, numbersToHalves } from "./half-float";
import { describeOrtError } from "./ort-errors";
import { childRequestSchema, type ChildMessage, type ChildRequest, type FlatTensor } from "./validation.schemas";

function send(message: ChildMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s+/g, " ").trim().slice(0, 1000);
}

/** Deterministic values in [0, 1), so two validations of a model feed it the same data. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Filled = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/** A typed array of the tensor's type holding `values`, or null when the type is one validation cannot fill. */
function typedArray(type: string, values: number[]): Filled | null {
  switch (type) {
    case "float32":
      return Float32Array.from(values);
    case "float64":
      return Float64Array.from(values);
    case "float16":
      return numbersToHalves(values);
    case "int8":
      return Int8Array.from(values);
    case "uint8":
      return Uint8Array.from(values);
    case "int16":
      return Int16Array.from(values);
    case "uint16":
      return Uint16Array.from(values);
    case "int32":
      return Int32Array.from(values);
    case "uint32":
      return Uint32Array.from(values);
    case "int64":
      return BigInt64Array.from(values, (v) => BigInt(Math.trunc(v)));
    case "uint64":
      return BigUint64Array.from(values, (v) => BigInt(Math.max(0, Math.trunc(v))));
    case "bool":
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
    default:
      return null;
  }
}

// The element type and the array's type match by construction; ort's overloads cannot see that.
function tensor(type: string, data: Filled, shape: number[]): ort.Tensor {
  return new ort.Tensor(type as "float32", data as Float32Array, shape);
}

function generatedInputs(request: ChildRequest): Record<string, ort.Tensor> {
  const random = seeded(0x5eed);
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of request.inputs) {
    const count = input.shape.reduce((a, b) => a * b, 1);
    const isFloat = input.type.startsWith("float");
    // Floats in [-1, 1); integers small and non-negative, since they are often indices.
    const values = Array.from({ length: count }, () => (isFloat ? random() * 2 - 1 : input.type === "bool" ? Math.round(random()) : Math.floor(random() * 4)));
    const data = typedArray(input.type, values);
    if (!data) throw new ProblemError(`Input "${input.name}" has element type ${input.type}, which Gantry does not serve: inputs must be float16, float32, float64, integers or bool. Export the model with float32 inputs.`);
    feeds[input.name] = tensor(input.type, data, input.shape);
  }
  return feeds;
}

class ProblemError extends Error {}

function tensorFrom(name: string, flat: FlatTensor): ort.Tensor {
  const data = typedArray(flat.type, flat.data);
  if (!data) throw new ProblemError(`Test vector input "${name}" has element type ${flat.type}, which validation cannot fill yet.`);
  return tensor(flat.type, data, flat.shape);
}

function percentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

/**
 * Runs the test vector's inputs and compares the outputs. Whatever goes wrong here is the
 * vector's problem, reported as such: the model has already earned its own verdict.
 */
async function runTestVector(session: ort.InferenceSession, vector: NonNullable<ChildRequest["testVector"]>): Promise<{ maxAbsDiff: number | null; problems: string[] }> {
  const problems: string[] = [];
  let results: ort.InferenceSession.OnnxValueMapType;
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, tensor] of Object.entries(vector.inputs)) feeds[name] = tensorFrom(name, tensor);
    results = await session.run(feeds);
  } catch (error) {
    problems.push(error instanceof ProblemError ? error.message : `onnxruntime could not run the test vector's inputs: ${describeOrtError(error)}`);
    return { maxAbsDiff: null, problems };
  }
  const expected = Object.entries(vector.outputs);
  if (expected.length === 0) return { maxAbsDiff: null, problems };
  let maxAbsDiff = 0;
  for (const [name, want] of expected) {
    const actual = results[name];
    if (!actual) {
      problems.push(`The test vector expects an output "${name}", which the model did not produce.`);
      continue;
    }
    const got = actual.type === "float16" ? float16Values(actual.data as ArrayLike<number>) : Array.from(actual.data as ArrayLike<number | bigint>, Number);
    if (got.length !== want.data.length) {
      problems.push(`Output "${name}" has ${got.length} values (shape [${actual.dims.join(", ")}]) but the test vector expects ${want.data.length} (shape [${want.shape.join(", ")}]).`);
      continue;
    }
    for (let i = 0; i < got.length; i++) {
      const diff = Math.abs(got[i] - want.data[i]);
      if (Number.isNaN(diff)) {
        if (!(Number.isNaN(got[i]) && Number.isNaN(want.data[i]))) {
          problems.push(`Output "${name}" holds NaN at position ${i} where the test vector does not.`);
          return { maxAbsDiff: null, problems };
        }
      } else if (diff > maxAbsDiff) maxAbsDiff = diff;
    }
  }
  return { maxAbsDiff, problems };
}

async function validate(request: ChildRequest): Promise<void> {
  send({ type: "progress", step: "Loading the model in onnxruntime", fraction: 0.1 });
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(request.modelPath, { logSeverityLevel: 3 });
  } catch (error) {
    send({ type: "failure", problem: `onnxruntime could not load the model: ${describeOrtError(error)}`, peakRssBytes: peakRssBytes() });
    return;
  }
  const feeds = generatedInputs(request);

  send({ type: "progress", step: "Warming up", fraction: 0.2 });
  const warmupStart = performance.now();
  try {
    await session.run(feeds);
  } catch (error) {
    send({ type: "failure", problem: `onnxruntime could not run the model: ${describeOrtError(error)}`, peakRssBytes: peakRssBytes() });
    return;
  }
  const warmupMs = performance.now() - warmupStart;

  const timings: number[] = [];
  const every = Math.max(1, Math.floor(request.runs / 20));
  for (let i = 0; i < request.runs; i++) {
    if (i % every === 0) send({ type: "progress", step: `Timing run ${i + 1} of ${request.runs}`, fraction: 0.25 + (0.65 * i) / request.runs });
    const start = performance.now();
    await session.run(feeds);
    timings.push(performance.now() - start);
  }
  timings.sort((a, b) => a - b);
  const figures = { warmupMs, runs: timings.length, p50Ms: percentile(timings, 50), p95Ms: percentile(timings, 95), peakRssBytes: peakRssBytes() };
  // The model's own verdict is complete: should the test vector crash this process, the parent still has it.
  send({ type: "timings", ...figures });

  let testVector: { maxAbsDiff: number | null; problems: string[] } | null = null;
  if (request.testVector) {
    send({ type: "progress", step: "Running the test vector", fraction: 0.92 });
    testVector = await runTestVector(session, request.testVector);
  }
  send({ type: "result", ...figures, peakRssBytes: peakRssBytes(), testVector });
  await session.release();
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function main(): Promise<void> {
  try {
    const request = childRequestSchema.safeParse(JSON.parse(await readStdin()));
    if (!request.success) throw new Error(`the validation request was malformed (${request.error.issues[0].message})`);
    await validate(request.data);
  } catch (error) {
    send({ type: "failure", problem: error instanceof ProblemError ? error.message : `Validation failed: ${errorText(error)}`, peakRssBytes: peakRssBytes() });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
