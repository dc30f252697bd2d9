import { decodeNpy } from "@/server/models/validation.schemas";

// A test vector from files a person has: one JSON file { inputs, outputs, tolerance? } of
// nested arrays, or .npy files named after the tensors they hold (x.npy for input x).

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
    throw new Error(`${file.name} is not JSON; a test vector file is { "inputs": { name: arrays }, "outputs": { name: arrays } }`);
  }
}
