import { AppError } from "../errors";
import type { RawTensor } from "./session-pool";
import { jsonTensorText, toOipDatatype, type InputTensor } from "./tensors";

// The Open Inference Protocol v2 infer request and response, with JSON tensors and the
// binary tensor data extension (as KServe and Triton define it): a request or response body
// may be a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensors,
// row-major and little-endian, in the order of the tensors that declare
// `parameters.binary_data_size`. Clients ask for binary outputs with the request parameter
// `binary_data_output: true` or an output's `binary_data: true` (which wins for that output).

/** As Node gives request headers: lower-cased. */
export const BINARY_HEADER = "inference-header-content-length";

export interface InferRequest {
  id?: string;
  inputs: InputTensor[];
  outputs?: Array<{ name: string; parameters?: { binary_data?: unknown } }>;
  parameters?: { binary_data_output?: unknown };
}

const EXAMPLE = '{ "inputs": [{ "name", "shape", "datatype", "data" }] }';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function refuse(where: string, message: string): never {
  throw new AppError("BAD_REQUEST", `The request body is not what this route takes: ${where}: ${message} (expected ${EXAMPLE})`);
}

/**
 * Parses an infer request body (`headerLength` from Inference-Header-Content-Length, when
 * sent). The structure is checked by hand rather than with zod: this runs on every request,
 * and the tensor values (checked one by one as they are copied, in tensors.ts) would
 * otherwise be walked twice.
 */
export function parseInferRequest(body: Buffer, headerLength: string | string[] | undefined): InferRequest {
  let jsonBytes = body;
  let binary: Buffer | null = null;
  if (headerLength !== undefined) {
    const n = Number(Array.isArray(headerLength) ? headerLength[0] : headerLength);
    if (!Number.isSafeInteger(n) || n < 0 || n > body.length) {
      throw new AppError("BAD_REQUEST", `Inference-Header-Content-Length is ${String(headerLength)}, but it must be the byte length of the JSON part of the ${body.length}-byte body`);
    }
    jsonBytes = body.subarray(0, n);
    binary = body.subarray(n);
  }
  let value: unknown;
  try {
    value = JSON.parse(jsonBytes.toString("utf8"));
  } catch {
    throw new AppError("BAD_REQUEST", binary ? "The first Inference-Header-Content-Length bytes of the body are not valid JSON" : "The request body is not valid JSON");
  }
  if (!isObject(value)) refuse("the body", "must be an object");
  if (value.id !== undefined && typeof value.id !== "string") refuse("id", "must be a string");
  if (value.parameters !== undefined && !isObject(value.parameters)) refuse("parameters", "must be an object");
  const inputs = value.inputs;
  if (!Array.isArray(inputs) || inputs.length === 0) refuse("inputs", "must be a list of at least one tensor");
  let offset = 0;
  for (let i = 0; i < inputs.length; i++) {
    const t: unknown = inputs[i];
    if (!isObject(t)) refuse(`inputs.${i}`, "must be an object");
    if (typeof t.name !== "string") refuse(`inputs.${i}.name`, "must be a string");
    if (!Array.isArray(t.shape) || !t.shape.every((d) => typeof d === "number")) refuse(`inputs.${i}.shape`, "must be a list of numbers");
    if (typeof t.datatype !== "string") refuse(`inputs.${i}.datatype`, "must be a string");
    if (t.parameters !== undefined && !isObject(t.parameters)) refuse(`inputs.${i}.parameters`, "must be an object");
    const size = (t.parameters as Record<string, unknown> | undefined)?.binary_data_size;
    if (size === undefined) {
      if (!Array.isArray(t.data)) refuse(`inputs.${i}.data`, "must be a list");
      continue;
    }
    if (!binary) throw new AppError("BAD_REQUEST", `Input "${t.name}" declares binary_data_size but the request has no Inference-Header-Content-Length header saying where its binary data starts`);
    if (!Number.isSafeInteger(size) || (size as number) < 0) refuse(`inputs.${i}.parameters.binary_data_size`, "must be a whole number of bytes");
    if (offset + (size as number) > binary.length) {
      throw new AppError("BAD_REQUEST", `Input "${t.name}" declares ${String(size)} bytes of binary data, but only ${binary.length - offset} remain in the body`);
    }
    (t as unknown as InputTensor).binary = binary.subarray(offset, offset + (size as number));
    offset += size as number;
  }
  if (binary && offset !== binary.length) {
    throw new AppError("BAD_REQUEST", `The body has ${binary.length} bytes of binary data after its JSON header, but its inputs declare ${offset} (binary_data_size)`);
  }
  const outputs = value.outputs;
  if (outputs !== undefined && (!Array.isArray(outputs) || !outputs.every((o) => isObject(o) && typeof o.name === "string" && (o.parameters === undefined || isObject(o.parameters))))) {
    refuse("outputs", 'must be a list of { "name" }');
  }
  return value as unknown as InferRequest;
}

/** Whether the client asked for this output as raw bytes (its own binary_data wins over the request's). */
function isBinaryOutput(request: InferRequest, name: string): boolean {
  const perOutput = request.outputs?.find((o) => o.name === name)?.parameters?.binary_data;
  return typeof perOutput === "boolean" ? perOutput : request.parameters?.binary_data_output === true;
}

const NO_OUTPUTS: ReadonlySet<string> = new Set();

/** Of the model's outputs, the ones the client takes as raw bytes. */
export function binaryOutputNames(request: InferRequest, outputs: ReadonlyArray<{ name: string }>): ReadonlySet<string> {
  // Most requests ask for none: no set is built for them.
  if (request.parameters?.binary_data_output !== true && !request.outputs?.some((o) => o.parameters?.binary_data === true)) return NO_OUTPUTS;
  const names = new Set<string>();
  for (const { name } of outputs) if (isBinaryOutput(request, name)) names.add(name);
  return names;
}

/** The infer response: JSON, or a JSON header and raw tensors when any output is asked in binary. */
export function buildInferResponse(
  request: InferRequest,
  model: { name: string; version: string },
  outputs: Array<{ name: string; tensor: RawTensor }>,
  binaryOutputs: ReadonlySet<string>,
): { headers: Record<string, string | number>; body: Buffer | string } {
  const binaries: Buffer[] = [];
  const described = outputs.map(({ name, tensor }) => {
    // JSON tensors are written as text directly (the same text JSON.stringify gives).
    if (!binaryOutputs.has(name)) return jsonTensorText(name, tensor);
    const data = tensor.data as ArrayBufferView;
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    binaries.push(bytes);
    return JSON.stringify({ name, shape: tensor.dims.map(Number), datatype: toOipDatatype(tensor.type), parameters: { binary_data_size: bytes.length } });
  });
  const id = request.id ? `,"id":${JSON.stringify(request.id)}` : "";
  const json = `{"model_name":${JSON.stringify(model.name)},"model_version":${JSON.stringify(model.version)}${id},"outputs":[${described.join(",")}]}`;
  if (binaries.length === 0) return { headers: { "content-type": "application/json", "content-length": Buffer.byteLength(json) }, body: json };
  const header = Buffer.from(json, "utf8");
  const body = Buffer.concat([header, ...binaries]);
  // Spelled as Triton spells it: some clients read response headers case-sensitively.
  return { headers: { "content-type": "application/octet-stream", "content-length": body.length, "Inference-Header-Content-Length": header.length }, body };
}
