import { decodeNpy, type ChildRequest, type Signature, type TensorSpec } from "./validation.schemas";

// A test vector: inputs to feed a model, and optionally the outputs they should give. Read in
// every form people have one in, then checked against the model's declared inputs and outputs:
//
//   {"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}, "outputs": {"y": [[…]]}, "tolerance": 1e-4}
//   {"inputs": {"x": {"shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}}}          (datatype optional)
//   {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}
//
// The last is an Open Inference Protocol request body, as sent to /v2/models/{name}/infer;
// its outputs may be given the same way (an OIP response's "outputs"). Outputs are optional:
// without them the vector proves the model runs on those inputs. An array may also be the
// bytes of a .npy file (for callers in this process). Pure: the pages use it too.

/** One array of a test vector, flattened row-major. `datatype` is the element type it claims, if any. */
export type VectorTensor = { shape: number[]; data: number[]; datatype: string | null };
export type ParsedTestVector = { inputs: Record<string, VectorTensor>; outputs: Record<string, VectorTensor>; tolerance: number | null };
export type ChildTestVector = NonNullable<ChildRequest["testVector"]>;

/** Open Inference Protocol datatypes and the element types Gantry names them by. */
const oipDatatypes: Record<string, string> = {
  BOOL: "bool",
  UINT8: "uint8",
  UINT16: "uint16",
  UINT32: "uint32",
  UINT64: "uint64",
  INT8: "int8",
  INT16: "int16",
  INT32: "int32",
  INT64: "int64",
  FP16: "float16",
  FP32: "float32",
  FP64: "float64",
  BF16: "bfloat16",
  BYTES: "string",
};
const oipOf = Object.fromEntries(Object.entries(oipDatatypes).map(([oip, type]) => [type, oip]));

/** Element types a test vector can feed (what the validation process can build a tensor of). */
const FEEDABLE = new Set(["float16", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "bool"]);
const INTEGER_RANGES: Record<string, [number, number]> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};
/** The largest finite value of the float types a larger one would overflow (float16 rounds 65520 and up to Infinity). */
const FLOAT_MAX: Record<string, number> = { float16: 65504, float32: 3.4028234663852886e38 };
const MAX_RANK = 32;
/** Keys an OIP request or response carries beside its tensors; a test vector ignores them. */
const IGNORED_KEYS = new Set(["id", "parameters", "model_name", "model_version"]);
const FORMS_HINT = 'give {"inputs": {"x": nested arrays}}, {"inputs": {"x": {"shape": [...], "data": [...]}}} or the Open Inference Protocol form {"inputs": [{"name": "x", "shape": [...], "datatype": "FP32", "data": [...]}]}';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const typeLabel = (type: string) => (oipOf[type] ? `${type} (${oipOf[type]})` : type);
const shapeText = (shape: ReadonlyArray<number | string>) => `[${shape.join(", ")}]`;
const describe = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "string" ? `the text ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}` : typeof v);

type Side = "input" | "output";
const title = (side: Side, name: string) => `${side === "input" ? "Input" : "Output"} ${JSON.stringify(name)}`;

/** Nested arrays → shape and row-major values, or why not. */
function flattenNested(value: unknown): { shape: number[]; values: unknown[] } | string {
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  if (shape.length > MAX_RANK) return `nests arrays ${shape.length} deep; no model input has more than ${MAX_RANK} dimensions`;
  const values: unknown[] = [];
  const walk = (v: unknown, depth: number): boolean => {
    if (depth === shape.length) {
      if (Array.isArray(v)) return false;
      values.push(v);
      return true;
    }
    return Array.isArray(v) && v.length === shape[depth] && v.every((item) => walk(item, depth + 1));
  };
  return walk(value, 0) ? { shape, values } : "is ragged: rows at one depth differ in length";
}

/** Values as numbers (booleans as 1 and 0), or why not, naming the first bad one. */
function toNumbers(values: unknown[]): number[] | string {
  const out = new Array<number>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === "number" && Number.isFinite(v)) out[i] = v;
    else if (typeof v === "boolean") out[i] = v ? 1 : 0;
    else if (typeof v === "number") return `holds ${v} at position ${i}; a test vector holds finite numbers only`;
    else return `holds ${describe(v)} at position ${i} where a number belongs`;
  }
  return out;
}

function readDatatype(value: unknown): string | null | { problem: string } {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string") return { problem: `has a datatype that is ${describe(value)}, not a name such as FP32` };
  const type = oipDatatypes[value.toUpperCase()] ?? (Object.values(oipDatatypes).includes(value.toLowerCase()) ? value.toLowerCase() : null);
  return type ?? { problem: `has datatype ${JSON.stringify(value)}, which is not one of ${Object.keys(oipDatatypes).join(", ")}` };
}

/** One array in any form → a VectorTensor, or why not (a sentence to follow its name). */
function readTensor(value: unknown): VectorTensor | string {
  if (value instanceof Uint8Array) {
    const decoded = decodeNpy(value);
    if (typeof decoded === "string") return `is not a readable .npy array: ${decoded}`;
    if (!decoded.data.every(Number.isFinite)) return "holds NaN or infinite values, which cannot be compared";
    return { ...decoded, datatype: null };
  }
  if (!isRecord(value)) {
    if (!Array.isArray(value) && typeof value !== "number" && typeof value !== "boolean") return `is ${describe(value)}, not a number, a nested array of numbers or {"shape", "data"}`;
    const flat = flattenNested(value);
    if (typeof flat === "string") return flat;
    const data = toNumbers(flat.values);
    return typeof data === "string" ? data : { shape: flat.shape, data, datatype: null };
  }
  if ("parameters" in value && isRecord(value.parameters) && "binary_data_size" in value.parameters) return "is sent as binary tensor data; a test vector gives its data as JSON numbers";
  if (!("data" in value)) return 'gives no "data"';
  const datatype = readDatatype(value.datatype);
  if (datatype && typeof datatype === "object") return datatype.problem;
  const flat = flattenNested(value.data);
  if (typeof flat === "string") return `has data that ${flat}`;
  const data = toNumbers(flat.values);
  if (typeof data === "string") return `has data that ${data}`;
  let shape = flat.shape;
  if (value.shape !== undefined) {
    if (!Array.isArray(value.shape) || !value.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) return `has a shape that is not a list of whole numbers of 0 or more (${JSON.stringify(value.shape)})`;
    shape = value.shape as number[];
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== data.length) return `has ${data.length} values, but its shape ${shapeText(shape)} holds ${count}`;
  }
  return { shape, data, datatype };
}

/** The tensors of one side, by name, from a { name: array } object or an OIP list; problems are pushed. */
function readSide(value: unknown, side: Side, problems: string[]): Record<string, VectorTensor> {
  const out: Record<string, VectorTensor> = {};
  const key = `${side}s`;
  if (value === undefined || value === null) return out;
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      if (!isRecord(item) || typeof item.name !== "string" || !item.name) {
        problems.push(`The ${key} list's item ${i + 1} is not {"name", "shape", "datatype", "data"} with a name`);
        return;
      }
      if (item.name in out) return void problems.push(`${title(side, item.name)} is given twice`);
      // An OIP request lists the outputs it wants by name only: nothing to compare with.
      if (side === "output" && !("data" in item) && !("shape" in item)) return;
      const tensor = readTensor(item);
      if (typeof tensor === "string") problems.push(`${title(side, item.name)} ${tensor}`);
      else out[item.name] = tensor;
    });
    return out;
  }
  if (!isRecord(value)) {
    problems.push(`The test vector's ${key} is ${describe(value)}; ${FORMS_HINT}`);
    return out;
  }
  for (const [name, item] of Object.entries(value)) {
    const tensor = readTensor(item);
    if (typeof tensor === "string") problems.push(`${title(side, name)} ${tensor}`);
    else out[name] = tensor;
  }
  return out;
}

/**
 * Reads a test vector in any of its forms, without the model: what can be wrong with the
 * vector on its own (not JSON-shaped, ragged, shape and data disagreeing, a datatype unknown).
 */
export function parseTestVector(raw: unknown): { vector: ParsedTestVector; problems: [] } | { vector: null; problems: string[] } {
  if (!isRecord(raw)) return { vector: null, problems: [`A test vector is a JSON object, not ${describe(raw)}; ${FORMS_HINT}`] };
  if (!("inputs" in raw)) return { vector: null, problems: [`The test vector has no "inputs"; ${FORMS_HINT}`] };
  const problems: string[] = [];
  for (const key of Object.keys(raw)) {
    if (!["inputs", "outputs", "tolerance"].includes(key) && !IGNORED_KEYS.has(key)) problems.push(`The test vector has a field ${JSON.stringify(key)}; it takes "inputs", "outputs" and "tolerance"`);
  }
  const inputs = readSide(raw.inputs, "input", problems);
  const outputs = readSide(raw.outputs, "output", problems);
  let tolerance: number | null = null;
  if (raw.tolerance !== undefined && raw.tolerance !== null) {
    if (typeof raw.tolerance === "number" && Number.isFinite(raw.tolerance) && raw.tolerance >= 0) tolerance = raw.tolerance;
    else problems.push(`The test vector's tolerance must be a number of 0 or more, not ${JSON.stringify(raw.tolerance)}`);
  }
  if (tolerance !== null && Object.keys(outputs).length === 0 && problems.length === 0) problems.push("The test vector gives a tolerance but no expected outputs to hold to it; add its outputs, or drop the tolerance");
  if (problems.length) return { vector: null, problems };
  return { vector: { inputs, outputs, tolerance }, problems: [] };
}

/** Each given array against its declared tensor: element type, values, rank, fixed and symbolic dimensions. */
function checkTensor(side: Side, spec: TensorSpec, given: VectorTensor, symbols: Map<string, { size: number; where: string }>, problems: string[]): void {
  const what = title(side, spec.name);
  if (side === "input" && !FEEDABLE.has(spec.type)) {
    problems.push(`${what} is ${spec.type} in the model, which a test vector cannot give yet (it can give ${[...FEEDABLE].join(", ")})`);
    return;
  }
  if (given.datatype && given.datatype !== spec.type) {
    problems.push(`${what} is ${typeLabel(spec.type)} in the model, but the test vector gives ${typeLabel(given.datatype)}`);
    return;
  }
  if (side === "input") {
    const range = INTEGER_RANGES[spec.type];
    const bad = given.data.findIndex((v) =>
      spec.type === "bool" ? v !== 0 && v !== 1 : range ? !Number.isInteger(v) || v < range[0] || v > range[1] : Math.abs(v) > (FLOAT_MAX[spec.type] ?? Infinity),
    );
    if (bad >= 0) {
      const need = spec.type === "bool" ? "true/false or 1/0" : range ? `whole numbers from ${range[0]} to ${range[1]}` : `numbers within ${spec.type}'s range`;
      problems.push(`${what} is ${spec.type}, which takes ${need}, but the test vector holds ${given.data[bad]} at position ${bad}`);
      return;
    }
  }
  // A declared shape of [] may also mean "rank unknown" (no shape in the file): onnxruntime decides.
  if (spec.shape.length === 0) return;
  if (given.shape.length !== spec.shape.length) {
    problems.push(`${what} has ${spec.shape.length} dimension${spec.shape.length === 1 ? "" : "s"} ${shapeText(spec.shape)} in the model, but the test vector gives ${given.shape.length} (${shapeText(given.shape)})`);
    return;
  }
  spec.shape.forEach((dim, axis) => {
    const size = given.shape[axis];
    if (typeof dim === "number") {
      if (dim !== size) problems.push(`${what} has shape ${shapeText(spec.shape)} in the model, so axis ${axis} must be ${dim}, but the test vector gives ${size} (shape ${shapeText(given.shape)})`);
    } else if (dim !== "?") {
      const bound = symbols.get(dim);
      if (!bound) symbols.set(dim, { size, where: `${side} ${JSON.stringify(spec.name)}` });
      else if (bound.size !== size) problems.push(`${what} has axis ${axis} "${dim}", which ${bound.where} gives as ${bound.size}, but the test vector gives it ${size} here (shape ${shapeText(given.shape)})`);
    }
  });
}

/**
 * Checks a vector against the model's signature: every input given and none unknown, outputs
 * the model has, element types and shapes (a symbolic dimension the same size wherever it
 * appears). Returns the vector as the validation process takes it, or every problem found,
 * each naming the input or output it is about.
 */
export function prepareTestVector(raw: unknown, signature: Signature): { vector: ChildTestVector; problems: [] } | { vector: null; problems: string[] } {
  const parsed = parseTestVector(raw);
  if (!parsed.vector) return parsed;
  const problems: string[] = [];
  const symbols = new Map<string, { size: number; where: string }>();
  const out: ChildTestVector = { inputs: {}, outputs: {}, tolerance: parsed.vector.tolerance ?? undefined };
  for (const side of ["input", "output"] as const) {
    const specs = side === "input" ? signature.inputs : signature.outputs;
    const given = side === "input" ? parsed.vector.inputs : parsed.vector.outputs;
    const names = specs.map((s) => JSON.stringify(s.name)).join(", ") || "none";
    if (side === "input") for (const spec of specs) if (!(spec.name in given)) problems.push(`${title(side, spec.name)} is missing from the test vector (the model's inputs: ${names})`);
    for (const [name, tensor] of Object.entries(given)) {
      const spec = specs.find((s) => s.name === name);
      if (!spec) {
        problems.push(`${title(side, name)} is not one of the model's ${side}s (${names})`);
        continue;
      }
      const before = problems.length;
      checkTensor(side, spec, tensor, symbols, problems);
      if (problems.length === before) (side === "input" ? out.inputs : out.outputs)[name] = { type: spec.type, shape: tensor.shape, data: tensor.data };
    }
  }
  return problems.length ? { vector: null, problems } : { vector: out, problems: [] };
}
