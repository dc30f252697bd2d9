import { AppError } from "../errors";
import { float16Values, halvesToNumbers, isHalfNonFinite, numberToHalf } from "../models/half-float";
import type { TensorSpec } from "../models/validation.schemas";
import type { EndpointSettings } from "./endpoints.schemas";
import type { RawTensor } from "./session-pool";

// Conversion between JSON tensors (Open Inference Protocol datatypes, row-major data) and
// onnxruntime tensors, with every check a caller's mistake deserves a sentence for.

const oipToOrt = {
  FP16: "float16",
  FP32: "float32",
  FP64: "float64",
  INT8: "int8",
  INT16: "int16",
  INT32: "int32",
  INT64: "int64",
  UINT8: "uint8",
  UINT16: "uint16",
  UINT32: "uint32",
  UINT64: "uint64",
  BOOL: "bool",
} as const;
type OipDatatype = keyof typeof oipToOrt;
type OrtType = (typeof oipToOrt)[OipDatatype];
const ortToOip: Record<string, string> = Object.fromEntries(Object.entries(oipToOrt).map(([k, v]) => [v, k]));

/** The OIP datatype of an onnxruntime element type ("float32" → "FP32"); unknown ones upper-cased. */
export function toOipDatatype(ortType: string): string {
  return ortToOip[ortType] ?? ortType.toUpperCase();
}

/** OIP metadata shape: symbolic dimensions are -1. */
export function toOipShape(shape: TensorSpec["shape"]): number[] {
  return shape.map(fixedSize);
}

/** A dimension as OIP metadata states it: its size, or -1 when symbolic. */
const fixedSize = (d: TensorSpec["shape"][number]) => (typeof d === "number" && d >= 0 ? d : -1);

export interface JsonTensor {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown[];
}

/** A request's tensor: JSON values in `data`, or raw little-endian bytes in `binary` (the binary extension). */
export interface InputTensor {
  name: string;
  shape: number[];
  datatype: string;
  data?: unknown[];
  binary?: Uint8Array;
}

const isBig = (t: OrtType) => t === "int64" || t === "uint64";

/** Checks a request's tensors against the model's signature and builds the feeds. */
export function buildFeeds(endpointName: string, signature: { inputs: TensorSpec[] }, settings: EndpointSettings, inputs: InputTensor[]): Record<string, RawTensor> {
  const feeds: Record<string, RawTensor> = {};
  // A symbolic dimension has one size per request, whichever inputs declare it: onnxruntime
  // would otherwise broadcast a size of 1 against it and answer as if nothing were wrong.
  const symbols: Symbols = new Map();
  for (const input of inputs) {
    const spec = signature.inputs.find((s) => s.name === input.name);
    if (!spec) throw bad(`Input "${input.name}" is not an input of endpoint ${endpointName}; it takes ${inputNames(signature)}`);
    if (feeds[input.name]) throw bad(`Input "${input.name}" is given twice`);
    const ortType = oipToOrt[input.datatype as OipDatatype];
    if (!ortType) throw bad(`Input "${input.name}" has datatype "${input.datatype}", which is not one of ${Object.keys(oipToOrt).join(", ")}`);
    if (ortType !== spec.type) throw bad(`Input "${input.name}" must have datatype ${toOipDatatype(spec.type)}, not ${input.datatype}`);
    checkShape(input, spec, settings);
    bindSymbols(input, spec, symbols);
    let count = 1;
    for (const d of input.shape) count *= d;
    if (input.binary) {
      feeds[input.name] = { type: ortType, data: fromBinary(input.name, ortType, input.binary, count, settings.preprocessing?.[input.name], input.shape), dims: input.shape };
      continue;
    }
    const data = input.data ?? [];
    // Row-major data is flat by the protocol; some clients nest it, which costs a flatten.
    const flat = data.length > 0 && Array.isArray(data[0]) ? (data.flat(Infinity as 1) as unknown[]) : data;
    if (flat.length !== count) throw bad(`Input "${input.name}" has ${flat.length} values, but shape [${input.shape.join(", ")}] needs ${count}`);
    feeds[input.name] = { type: ortType, data: toTypedArray(input.name, ortType, flat, settings.preprocessing?.[input.name], input.shape), dims: input.shape };
  }
  if (inputs.length < signature.inputs.length || signature.inputs.some((s) => !feeds[s.name])) {
    const missing = signature.inputs.filter((s) => !feeds[s.name]).map((s) => s.name);
    throw bad(`Input${missing.length > 1 ? "s" : ""} ${missing.map((m) => `"${m}"`).join(", ")} ${missing.length > 1 ? "are" : "is"} missing; endpoint ${endpointName} takes ${inputNames(signature)}`);
  }
  return feeds;
}

const inputNames = (signature: { inputs: TensorSpec[] }) => signature.inputs.map((s) => s.name).join(", ");

function checkShape(input: InputTensor, spec: TensorSpec, settings: EndpointSettings) {
  const shape = input.shape;
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw bad(`Input "${input.name}" needs a shape of non-negative whole numbers`);
  const expected = spec.shape;
  if (shape.length !== expected.length) throw bad(`Input "${input.name}" must have ${expected.length} dimensions [${toOipShape(expected).join(", ")}], not ${shape.length} [${shape.join(", ")}]`);
  for (let i = 0; i < expected.length; i++) {
    const d = fixedSize(expected[i]);
    if (d !== -1 && shape[i] !== d) throw bad(`Input "${input.name}" must have size ${d} in dimension ${i}, not ${shape[i]} (expected [${toOipShape(expected).join(", ")}])`);
  }
  if (fixedSize(expected[0]) === -1 && shape[0] > settings.maxBatch) throw bad(`Input "${input.name}" has a batch of ${shape[0]}; this endpoint takes at most ${settings.maxBatch} (its maxBatch setting)`);
}

type Symbols = Map<string, { input: string; axis: number; size: number }>;

function bindSymbols(input: InputTensor, spec: TensorSpec, symbols: Symbols) {
  for (let axis = 0; axis < spec.shape.length; axis++) {
    const d = spec.shape[axis];
    if (typeof d !== "string" || d === "?" || d === "") continue;
    const size = input.shape[axis];
    const bound = symbols.get(d);
    if (!bound) {
      symbols.set(d, { input: input.name, axis, size });
      continue;
    }
    if (bound.size === size) continue;
    const first = bound.input === input.name ? `dimension ${bound.axis}` : `input "${bound.input}" (dimension ${bound.axis})`;
    throw bad(`Input "${input.name}" gives dimension "${d}" (dimension ${axis}) size ${size}, but ${first} gives it ${bound.size}; every input declaring "${d}" must use the same size`);
  }
}

type Normalisation = NonNullable<EndpointSettings["preprocessing"]>[string];
const numberArrays = { float32: Float32Array, float64: Float64Array, int8: Int8Array, int16: Int16Array, int32: Int32Array, uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array };

/** The endpoint's preprocessing for a tensor of this shape: value i of the row-major data, less its channel's mean, over its channel's std (the last dimension is the channel). */
function normaliser(norm: Normalisation, shape: number[]): (v: number, i: number) => number {
  const channels = shape.at(-1) ?? 1;
  const pick = (s: number | number[], i: number) => (typeof s === "number" ? s : (s[i % channels] ?? s[0]));
  return (v, i) => (v - pick(norm.mean, i)) / pick(norm.std, i);
}

/** One pass over the values: checks each and writes it into a fresh typed array (one the pool may transfer). */
function toTypedArray(name: string, type: OrtType, flat: unknown[], norm: Normalisation | undefined, shape: number[]): RawTensor["data"] {
  const n = flat.length;
  if (type === "bool") {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = flat[i];
      if (typeof v !== "boolean") throw bad(`Input "${name}" is BOOL, so its data must be true or false values`);
      out[i] = v ? 1 : 0;
    }
    return out;
  }
  if (isBig(type)) {
    const out = type === "int64" ? new BigInt64Array(n) : new BigUint64Array(n);
    for (let i = 0; i < n; i++) {
      const v = flat[i];
      if (typeof v !== "number" || !Number.isFinite(v)) throw notNumber(name, i);
      if (!Number.isSafeInteger(v)) throw bad(`Input "${name}" is ${toOipDatatype(type)}, so its data must be whole numbers`);
      out[i] = BigInt(v);
    }
    return out;
  }
  if (type === "float16") return toHalves(name, flat, norm, shape);
  const out = new numberArrays[type as keyof typeof numberArrays](n);
  const isFloat = type === "float32" || type === "float64";
  if (!norm) {
    for (let i = 0; i < n; i++) {
      const v = flat[i];
      if (typeof v !== "number" || !Number.isFinite(v)) throw notNumber(name, i);
      out[i] = v;
      if (isFloat && !Number.isFinite(out[i])) throw outOfRange(name, type, i, v);
    }
    return out;
  }
  const normalise = normaliser(norm, shape);
  for (let i = 0; i < n; i++) {
    const v = flat[i];
    if (typeof v !== "number" || !Number.isFinite(v)) throw notNumber(name, i);
    out[i] = normalise(v, i);
    if (isFloat && !Number.isFinite(out[i])) throw notNormalisable(name, i, v);
  }
  return out;
}

/**
 * FP16 values as half-precision bit patterns (what onnxruntime takes for float16), normalised
 * first when the endpoint says so; a value past FP16's ±65504 is refused, as it would be Infinity.
 */
function toHalves(name: string, flat: unknown[], norm: Normalisation | undefined, shape: number[]): Uint16Array {
  const out = new Uint16Array(flat.length);
  const normalise = norm ? normaliser(norm, shape) : null;
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v !== "number" || !Number.isFinite(v)) throw notNumber(name, i);
    const value = normalise ? normalise(v, i) : v;
    out[i] = numberToHalf(value);
    if (isHalfNonFinite(out[i])) throw norm ? notNormalisable(name, i, v) : halfOutOfRange(name, i, v);
  }
  return out;
}

const bytesPer: Record<OrtType, number> = { float16: 2, float32: 4, float64: 8, int8: 1, int16: 2, int32: 4, int64: 8, uint8: 1, uint16: 2, uint32: 4, uint64: 8, bool: 1 };

/** Raw little-endian bytes → a fresh, aligned typed array (normalised when the endpoint says so). */
function fromBinary(name: string, type: OrtType, bytes: Uint8Array, count: number, norm: Normalisation | undefined, shape: number[]): RawTensor["data"] {
  const needed = count * bytesPer[type];
  if (bytes.length !== needed) throw bad(`Input "${name}" has ${bytes.length} bytes of binary data, but ${toOipDatatype(type)} of shape [${shape.join(", ")}] needs ${needed}`);
  const copy = new Uint8Array(needed);
  copy.set(bytes);
  if (type === "bool") {
    for (let i = 0; i < count; i++) if (copy[i] > 1) throw bad(`Input "${name}" is BOOL, so each of its bytes must be 0 or 1`);
    return copy;
  }
  if (type === "float16") {
    const halves = new Uint16Array(copy.buffer);
    for (let i = 0; i < count; i++) if (isHalfNonFinite(halves[i])) throw notNumber(name, i);
    return norm ? toHalves(name, halvesToNumbers(halves), norm, shape) : halves;
  }
  const Ctor = type === "int64" ? BigInt64Array : type === "uint64" ? BigUint64Array : numberArrays[type as keyof typeof numberArrays];
  const out = new Ctor(copy.buffer);
  const isFloat = type === "float32" || type === "float64";
  if (isFloat) {
    // Raw bytes can hold NaN and ±Infinity, which JSON cannot: refused alike either way.
    const values = out as Float32Array | Float64Array;
    for (let i = 0; i < count; i++) if (!Number.isFinite(values[i])) throw notNumber(name, i);
  }
  if (norm && !isBig(type)) {
    const values = out as Exclude<RawTensor["data"], BigInt64Array | BigUint64Array | string[]>;
    const normalise = normaliser(norm, shape);
    for (let i = 0; i < count; i++) {
      const v = values[i] as number;
      values[i] = normalise(v, i);
      if (isFloat && !Number.isFinite(values[i] as number)) throw notNormalisable(name, i, v);
    }
  }
  return out;
}

const notNumber = (name: string, i: number) => bad(`Input "${name}" has a value that is not a finite number at position ${i}`);
const outOfRange = (name: string, type: OrtType, i: number, v: number) => bad(`Input "${name}" has ${v} at position ${i}, beyond the range of ${toOipDatatype(type)} (it would become Infinity); send values within ±3.4e38`);
const halfOutOfRange = (name: string, i: number, v: number) => bad(`Input "${name}" has ${v} at position ${i}, beyond the range of FP16 (it would become Infinity); send values within ±65504`);
const notNormalisable = (name: string, i: number, v: number) =>
  bad(`Input "${name}" has ${v} at position ${i}, which the endpoint's preprocessing (mean and std) turns into a value that is not a finite number; check that setting's std has no zero`);

/** Where a float tensor holds NaN or ±Infinity: how many, and the first position. Null for other types or none. */
export function findNonFinite(tensor: RawTensor): { count: number; first: number } | null {
  if (tensor.type !== "float32" && tensor.type !== "float64" && tensor.type !== "float16") return null;
  const data = tensor.data as ArrayLike<number>;
  // float16 as bit patterns (a Uint16Array), or as numbers where the runtime has Float16Array.
  const isBits = data instanceof Uint16Array;
  let count = 0;
  let first = -1;
  for (let i = 0; i < data.length; i++) {
    if (isBits ? !isHalfNonFinite(data[i]) : Number.isFinite(data[i])) continue;
    if (count++ === 0) first = i;
  }
  return count ? { count, first } : null;
}

/** onnxruntime output → JSON tensor (64-bit integers and half floats become numbers). */
export function toJsonTensor(name: string, tensor: RawTensor): JsonTensor {
  const data = tensor.data as ArrayLike<number | bigint | boolean>;
  const values =
    tensor.type === "bool" ? Array.from(data as Uint8Array, Boolean)
    : isBig(tensor.type as OrtType) ? Array.from(data as BigInt64Array, Number)
    : tensor.type === "float16" ? float16Values(data as ArrayLike<number>)
    : Array.from(data as Float32Array);
  return { name, shape: tensor.dims.map(Number), datatype: toOipDatatype(tensor.type), data: values };
}

/** Element types whose values a typed array's `join` writes exactly as JSON.stringify would (finite ones: the engine refuses others). */
const plainNumberTypes = new Set(["float32", "float64", "int8", "int16", "int32", "uint8", "uint16", "uint32"]);

/** toJsonTensor as JSON text, written without building the array of values for the common types. */
export function jsonTensorText(name: string, tensor: RawTensor): string {
  if (!plainNumberTypes.has(tensor.type)) return JSON.stringify(toJsonTensor(name, tensor));
  return `{"name":${JSON.stringify(name)},"shape":[${tensor.dims.join(",")}],"datatype":"${toOipDatatype(tensor.type)}","data":[${(tensor.data as Float32Array).join(",")}]}`;
}

/** Nested arrays → shape and row-major data; ragged arrays are refused. */
export function fromNested(name: string, value: unknown): { shape: number[]; data: unknown[] } {
  const shape: number[] = [];
  let level: unknown = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const data: unknown[] = [];
  const walk = (v: unknown, depth: number) => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw bad(`Input "${name}" is ragged: its nested arrays do not all have the same lengths`);
      data.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) throw bad(`Input "${name}" is ragged: its nested arrays do not all have the same lengths`);
    for (const item of v) walk(item, depth + 1);
  };
  walk(value, 0);
  return { shape, data };
}

/** Row-major data → nested arrays of the given shape. */
export function toNested(shape: number[], data: unknown[]): unknown {
  if (shape.length === 0) return data[0];
  const build = (depth: number, offset: number): unknown[] => {
    const stride = shape.slice(depth + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: shape[depth] }, (_, i) => (depth === shape.length - 1 ? data[offset + i] : build(depth + 1, offset + i * stride)));
  };
  return build(0, 0);
}

function bad(message: string) {
  return new AppError("BAD_REQUEST", message);
}
