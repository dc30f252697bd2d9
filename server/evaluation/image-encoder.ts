import * as ort from "onnxruntime-node";
import type { Db } from "../db";
import { AppError } from "../errors";
import { describeOrtError } from "../models/ort-errors";
import { signatureSchema, type Signature } from "../models/validation.schemas";
import type { MediaTools } from "../media/ffmpeg";
import type { EmbeddingSums } from "./diversity";
import type { EvalDataset, ImageEncoder } from "./evaluation.schemas";
import { sampleEpisodeFrames } from "./vision";

// An organisation's own image-embedding model (a CLIP image encoder someone exported, say) as
// the source of the visual descriptors for v, instead of thumbnails and colour histograms. Any
// ready ONNX version of the organisation's registry whose one input is an image batch
// [1|N, 3, H, W] of floats and whose one output is a vector per image qualifies.

/** Per-channel mean and standard deviation of the RGB values in 0..1 that the frames are normalised with: CLIP's (ImageNet's are within 0.03 of them), what image encoders are usually trained with. */
export const ENCODER_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const ENCODER_STD = [0.26862954, 0.26130258, 0.27577711] as const;
/** Largest frame side fed to an encoder: beyond this the decoded frames alone would take more memory than the job should. */
const MAX_SIDE = 1024;

type Shape = { ok: true; input: string; output: string; width: number; height: number; dims: number | null } | { ok: false; reason: string };

const isBatch = (d: number | string) => d === 1 || typeof d === "string";

/** Whether a signature is an image encoder's, and its frame size; or why not, in words. */
export function imageEncoderShape(signature: Signature): Shape {
  if (signature.inputs.length !== 1) return { ok: false, reason: `it has ${signature.inputs.length} inputs; an image encoder has one, the image` };
  if (signature.outputs.length !== 1) return { ok: false, reason: `it has ${signature.outputs.length} outputs; an image encoder has one, the embedding` };
  const [input] = signature.inputs;
  const [output] = signature.outputs;
  const shape = input.shape;
  if (input.type !== "float32") return { ok: false, reason: `its input "${input.name}" holds ${input.type}; an image encoder takes float32 pixels` };
  if (shape.length !== 4 || !isBatch(shape[0]) || shape[1] !== 3) return { ok: false, reason: `its input "${input.name}" has shape [${shape.join(", ")}]; an image encoder takes [1, 3, H, W] or [N, 3, H, W]` };
  const [height, width] = [shape[2], shape[3]];
  if (typeof height !== "number" || typeof width !== "number" || height < 1 || width < 1) return { ok: false, reason: `its input "${input.name}" does not fix the image size ([${shape.join(", ")}]); export it with a fixed height and width` };
  if (height > MAX_SIDE || width > MAX_SIDE) return { ok: false, reason: `its input takes ${width}×${height} images; at most ${MAX_SIDE} px a side is supported` };
  if (output.type !== "float32") return { ok: false, reason: `its output "${output.name}" holds ${output.type}; an embedding is float32` };
  const out = output.shape;
  if (out.length !== 2 || !isBatch(out[0])) return { ok: false, reason: `its output "${output.name}" has shape [${out.join(", ")}]; an embedding is one vector per image, [1, D] or [N, D]` };
  return { ok: true, input: input.name, output: output.name, width, height, dims: typeof out[1] === "number" ? out[1] : null };
}

const versionWhere = (orgId: string) => ({ orgId, kind: "onnx", status: "ready" as const, sha256: { not: null } });

/** The organisation's model versions that can make visual descriptors, newest first. */
export async function listImageEncoders(db: Db, { orgId }: { orgId: string }): Promise<ImageEncoder[]> {
  const versions = await db.modelVersion.findMany({ where: versionWhere(orgId), include: { model: { select: { name: true } } }, orderBy: [{ createdAt: "desc" }], take: 500 });
  return versions.flatMap((v) => {
    const signature = signatureSchema.safeParse(v.signature);
    const shape = signature.success ? imageEncoderShape(signature.data) : null;
    return shape?.ok ? [{ versionId: v.id, modelId: v.modelId, modelName: v.model.name, number: v.number, width: shape.width, height: shape.height, dims: shape.dims }] : [];
  });
}

/** The version as an image encoder, or a 4xx that says why it cannot be one. */
export async function findImageEncoder(db: Db, { orgId, versionId }: { orgId: string; versionId: string }): Promise<ImageEncoder & { sha256: string; input: string; output: string }> {
  const v = await db.modelVersion.findFirst({ where: { id: versionId, orgId }, include: { model: { select: { name: true } } } });
  if (!v) throw new AppError("NOT_FOUND", "There is no such model version in this organisation to use as the image encoder; it may have been deleted");
  const label = `Version ${v.number} of ${v.model.name}`;
  if (v.kind !== "onnx") throw new AppError("BAD_REQUEST", `${label} is a training checkpoint, not an ONNX model; choose an ONNX image encoder`);
  if (v.status !== "ready" || !v.sha256) throw new AppError("BAD_REQUEST", `${label} is ${v.status}, not ready; only a version that passed validation can be the image encoder`);
  const signature = signatureSchema.safeParse(v.signature);
  if (!signature.success) throw new AppError("BAD_REQUEST", `${label} has no recorded inputs and outputs; validate it again`);
  const shape = imageEncoderShape(signature.data);
  if (!shape.ok) throw new AppError("BAD_REQUEST", `${label} cannot be the image encoder: ${shape.reason}`);
  return { versionId: v.id, modelId: v.modelId, modelName: v.model.name, number: v.number, width: shape.width, height: shape.height, dims: shape.dims, sha256: v.sha256, input: shape.input, output: shape.output };
}

export interface OpenImageEncoder {
  /** The frame's embedding, L2-normalised (image encoders are compared by angle). */
  embed(rgb: Uint8Array): Promise<Float32Array>;
  release(): Promise<void>;
}

/** Packed RGB (height × width × 3) → a [1, 3, H, W] float tensor in 0..1, normalised per channel. */
export function toInputTensor(rgb: Uint8Array, width: number, height: number): Float32Array {
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = (rgb[i * 3 + c] / 255 - ENCODER_MEAN[c]) / ENCODER_STD[c];
  return out;
}

/**
 * Loads the model into this process. It already loaded and ran in validation's child process
 * before it became ready, so it is trusted to load here as the model server trusts it.
 */
export async function openImageEncoder(bytes: Uint8Array, encoder: { modelName: string; number: number; width: number; height: number; input: string; output: string }): Promise<OpenImageEncoder> {
  const label = `version ${encoder.number} of ${encoder.modelName}`;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  } catch (error) {
    throw new Error(`onnxruntime could not load the image encoder (${label}): ${describeOrtError(error)}`);
  }
  return {
    async embed(rgb) {
      const tensor = new ort.Tensor("float32", toInputTensor(rgb, encoder.width, encoder.height), [1, 3, encoder.height, encoder.width]);
      let result: ort.InferenceSession.OnnxValueMapType;
      try {
        result = await session.run({ [encoder.input]: tensor }, [encoder.output]);
      } catch (error) {
        throw new Error(`The image encoder (${label}) failed on a frame: ${describeOrtError(error)}`);
      }
      const data = Float32Array.from(result[encoder.output].data as Float32Array);
      let norm = 0;
      for (const x of data) norm += x * x;
      norm = Math.sqrt(norm);
      if (!Number.isFinite(norm)) throw new Error(`The image encoder (${label}) gave a non-finite embedding`);
      if (norm > 0) for (let i = 0; i < data.length; i++) data[i] /= norm;
      return data;
    },
    release: () => session.release(),
  };
}

/**
 * Decodes the same sampled frames as the metrics, at the encoder's own size (scaled to cover it
 * and centre-cropped, with ffmpeg), and sums each episode video's unit embeddings. Each frame is
 * embedded as it is decoded, and the decoder waits for it.
 */
export async function embedEpisodeFrames(
  ds: EvalDataset,
  opts: { tools: MediaTools; framesPerEpisode: number; encoder: OpenImageEncoder; width: number; height: number; signal?: AbortSignal; onProgress?: (done: number, total: number) => void },
): Promise<EmbeddingSums> {
  const sums: EmbeddingSums["sums"] = new Map();
  await sampleEpisodeFrames(ds, {
    tools: opts.tools,
    framesPerEpisode: opts.framesPerEpisode,
    size: { width: opts.width, height: opts.height },
    signal: opts.signal,
    onProgress: opts.onProgress,
    onFrame: async (f) => {
      const embedding = await opts.encoder.embed(f.rgb);
      const key = `${f.episode}\u0000${f.camera}`;
      let entry = sums.get(key);
      if (!entry) sums.set(key, (entry = { camera: f.camera, sum: new Float64Array(embedding.length), count: 0 }));
      if (entry.sum.length !== embedding.length) throw new Error(`The image encoder gave embeddings of ${entry.sum.length} and ${embedding.length} values; it must give one length`);
      embedding.forEach((x, i) => (entry.sum[i] += x));
      entry.count++;
    },
  });
  return { sums };
}

/** How the descriptors were made with an encoder, for the report. */
export function describeModelDescriptor(encoder: { modelName: string; number: number; width: number; height: number }, framesPerEpisode: number, dims: number | null): string {
  return `Image embeddings from ${encoder.modelName} version ${encoder.number} (the organisation's image encoder${dims ? `, ${dims} values` : ""}): ${framesPerEpisode} evenly spaced frames per episode and camera, scaled with ffmpeg to cover ${encoder.width}×${encoder.height} and centre-cropped, RGB in 0..1 normalised with CLIP's per-channel mean and standard deviation; each embedding is scaled to length 1 and an episode's camera is the mean of its frames', cameras side by side; the map is their first two principal components.`;
}
