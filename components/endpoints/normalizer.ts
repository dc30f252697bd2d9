// Reads normalisation statistics from the files LeRobot writes: `meta/stats.json` of a
// dataset ({ "<feature>": { "mean": [...], "std": [...], ... } }) and a policy's normalizer
// state in safetensors (tensors named "<feature>.mean" / "<feature>.std", possibly prefixed
// by the processor step, e.g. "buffer_observation_state.mean").

export interface Normalisation {
  mean: number[];
  std: number[];
}

export class NormalizerFileError extends Error {}

const MAX_HEADER = 16 * 1024 * 1024;

/** Feature name → mean and std, from a LeRobot stats JSON or normalizer safetensors file. */
export function parseNormalizer(bytes: Uint8Array, fileName: string): Record<string, Normalisation> {
  const found = fileName.toLowerCase().endsWith(".safetensors") ? fromSafetensors(bytes) : fromJson(bytes);
  if (Object.keys(found).length === 0) throw new NormalizerFileError(`${fileName} has no feature with both a mean and a std`);
  return found;
}

function fromJson(bytes: Uint8Array): Record<string, Normalisation> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new NormalizerFileError("The file is neither JSON (a LeRobot stats.json) nor .safetensors");
  }
  if (!parsed || typeof parsed !== "object") throw new NormalizerFileError("The JSON is not an object of features");
  const out: Record<string, Normalisation> = {};
  for (const [feature, stats] of Object.entries(parsed as Record<string, unknown>)) {
    if (!stats || typeof stats !== "object") continue;
    const mean = flatNumbers((stats as Record<string, unknown>).mean);
    const std = flatNumbers((stats as Record<string, unknown>).std);
    if (mean && std && mean.length === std.length) out[feature] = { mean, std };
  }
  return out;
}

function flatNumbers(value: unknown): number[] | null {
  if (typeof value === "number") return [value];
  if (!Array.isArray(value)) return null;
  const flat = value.flat(Infinity) as unknown[];
  return flat.length > 0 && flat.every((v) => typeof v === "number" && Number.isFinite(v)) ? (flat as number[]) : null;
}

function fromSafetensors(bytes: Uint8Array): Record<string, Normalisation> {
  if (bytes.length < 8) throw new NormalizerFileError("The .safetensors file is too short to hold a header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > MAX_HEADER || 8 + headerLength > bytes.length) throw new NormalizerFileError("The .safetensors header is damaged (its length runs past the file)");
  let header: Record<string, { dtype?: string; shape?: number[]; data_offsets?: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    throw new NormalizerFileError("The .safetensors header is not valid JSON");
  }
  const data = bytes.subarray(8 + headerLength);
  const tensors = new Map<string, number[]>();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__" || !info?.data_offsets) continue;
    const [start, end] = info.data_offsets;
    if (!(start >= 0 && end >= start && end <= data.length)) throw new NormalizerFileError(`Tensor ${name} points outside the file`);
    const slice = data.slice(start, end);
    const read = readers[info.dtype ?? ""];
    if (!read) continue; // integer buffers (counts) are not statistics
    tensors.set(name, read(slice.buffer));
  }
  const out: Record<string, Normalisation> = {};
  for (const [name, mean] of tensors) {
    if (!name.endsWith(".mean")) continue;
    const stem = name.slice(0, -".mean".length);
    const std = tensors.get(`${stem}.std`);
    if (std && std.length === mean.length) out[featureName(stem)] = { mean, std };
  }
  return out;
}

const readers: Record<string, (buffer: ArrayBuffer) => number[]> = {
  F32: (b) => Array.from(new Float32Array(b)),
  F64: (b) => Array.from(new Float64Array(b)),
};

/** "buffer_observation_state" → "observation.state"; "observation.state" stays. */
function featureName(stem: string): string {
  if (!stem.startsWith("buffer_")) return stem;
  return stem.slice("buffer_".length).replace(/_/g, ".");
}

/** The normaliser entry for a model input: the same name, or the same name with dots and underscores mixed up. */
export function matchFeature(inputName: string, features: string[]): string | null {
  const canon = (s: string) => s.toLowerCase().replace(/[._]/g, "");
  return features.find((f) => f === inputName) ?? features.find((f) => canon(f) === canon(inputName)) ?? null;
}

/** "0.1, 0.2 0.3" → [0.1, 0.2, 0.3]; null when any part is not a finite number. */
export function parseNumberList(text: string): number[] | null {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0) return null;
  const values = parts.map(Number);
  return values.every(Number.isFinite) ? values : null;
}
