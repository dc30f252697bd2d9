import { parseTestVector } from "@/server/models/test-vector";
import { decodeNpy } from "@/server/models/validation.schemas";

// A test vector from files a person has: one JSON file in any form the server reads (nested
// arrays by name, {shape, data} by name, or an Open Inference Protocol request body), or .npy
// files named after the tensors they hold (x.npy for input x).

export type NestedArray = number | NestedArray[];

/** Flat row-major values and a shape → nested arrays. */
export function nest(shape: number[], data: number[]): NestedArray {
  if (shape.length === 0) return data[0];
  const [n, ...rest] = shape;
  const stride = rest.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, (_, i) => nest(rest, data.slice(i * stride, (i + 1) * stride)));
}

/** The tensor an .npy file holds, named by its file name without the extension. */
export async function readNpy(file: File): Promise<[string, NestedArray]> {
  const name = file.name.replace(/\.npy$/i, "");
  if (!file.name.toLowerCase().endsWith(".npy")) throw new Error(`${file.name} is not a .npy file; name each file after its tensor, e.g. x.npy`);
  const decoded = decodeNpy(new Uint8Array(await file.arrayBuffer()));
  if (typeof decoded === "string") throw new Error(`${file.name}: ${decoded}`);
  return [name, nest(decoded.shape, decoded.data)];
}

export async function readTestVectorJson(file: File): Promise<unknown> {
  try {
    return JSON.parse(await file.text());
  } catch {
    throw new Error(`${file.name} is not JSON; a test vector file is {"inputs": {"x": nested arrays}, "outputs": {…}} or an Open Inference Protocol request body {"inputs": [{"name", "shape", "datatype", "data"}]}`);
  }
}

/**
 * The test vector a form's fields give: `vector` (one JSON file), or `inputs` and `outputs`
 * (.npy files), and `tolerance`. Undefined when none was given; throws a sentence to show when
 * the files cannot be read or the vector is malformed on its own (whether it fits the model is
 * the server's to say).
 */
export async function readTestVectorFields(form: FormData): Promise<unknown> {
  const files = (name: string) => form.getAll(name).filter((f): f is File => f instanceof File && f.size > 0);
  const toleranceText = String(form.get("tolerance") ?? "").trim();
  const tolerance = toleranceText ? Number(toleranceText) : undefined;
  if (tolerance !== undefined && !(tolerance >= 0)) throw new Error("The tolerance must be a number of 0 or more");
  const [json] = files("vector");
  const inputs = files("inputs");
  const outputs = files("outputs");
  if (json && (inputs.length || outputs.length)) throw new Error("Give either one JSON test vector or .npy files, not both");
  let vector: unknown;
  if (json) vector = await readTestVectorJson(json);
  else if (inputs.length) vector = { inputs: Object.fromEntries(await Promise.all(inputs.map(readNpy))), outputs: Object.fromEntries(await Promise.all(outputs.map(readNpy))) };
  else if (outputs.length) throw new Error("Expected outputs need the inputs that give them: add the input .npy files");
  if (vector === undefined) {
    if (tolerance !== undefined) throw new Error("A tolerance needs a test vector with expected outputs");
    return undefined;
  }
  if (tolerance !== undefined && typeof vector === "object" && vector !== null) vector = { ...(vector as object), tolerance };
  const parsed = parseTestVector(vector);
  if (!parsed.vector) throw new Error(`The test vector cannot be used: ${parsed.problems.join("; ")}`);
  return vector;
}
