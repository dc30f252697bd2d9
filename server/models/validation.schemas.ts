import { z } from "zod";

/** One graph input or output: a string in the shape is a symbolic dimension ("?" when unnamed). */
export const tensorSpecSchema = z.object({
  name: z.string(),
  type: z.string(),
  shape: z.array(z.union([z.number().int(), z.string()])),
});
export type TensorSpec = z.infer<typeof tensorSpecSchema>;

export const signatureSchema = z.object({ inputs: z.array(tensorSpecSchema), outputs: z.array(tensorSpecSchema) });
export type Signature = z.infer<typeof signatureSchema>;

/** Values for symbolic dimensions, by name; a symbol not given is taken as 1. */
export const validationDimsSchema = z.record(z.string(), z.number().int().min(1).max(2 ** 31));

export const testVectorOutcomeSchema = z.object({
  /** It ran and, when a tolerance was given, every expected output came within it. */
  ok: z.boolean(),
  /** Largest absolute difference from the expected outputs; null when none were given or it did not run. */
  maxAbsDiff: z.number().nullable(),
  tolerance: z.number().nullable(),
  problems: z.array(z.string()),
});
export type TestVectorOutcome = z.infer<typeof testVectorOutcomeSchema>;

/**
 * The outcome of validating one model version, passing or failing alike: a failing report
 * has ok false, at least one problem, and whatever was learnt before it stopped.
 */
export const validationReportSchema = z.object({
  ok: z.boolean(),
  /** Version of the default ("ai.onnx") operator set the model imports. */
  opset: z.number().int().nullable(),
  producer: z.string().nullable(),
  irVersion: z.number().int().nullable(),
  signature: signatureSchema.nullable(),
  /** The value used for each symbolic dimension. */
  dims: z.record(z.string(), z.number().int()),
  warmupMs: z.number().nullable(),
  /** Timed runs completed. */
  runs: z.number().int(),
  p50Ms: z.number().nullable(),
  p95Ms: z.number().nullable(),
  /** Peak resident memory of the process that ran the model, Node and onnxruntime themselves included. */
  peakRssBytes: z.number().nullable(),
  maxAbsDiff: z.number().nullable(),
  /** What is wrong with the model itself; `ok` is true when there is nothing. */
  problems: z.array(z.string()),
  /**
   * How the test vector fared, when one was given. Its outcome is the vector's, never the
   * model's: `ok` above and the version's status do not depend on it. Reports written before
   * this existed have none.
   */
  testVector: testVectorOutcomeSchema.nullable().default(null),
});
export type ValidationReport = z.infer<typeof validationReportSchema>;

/** Row-major values and their shape: what a .npy array holds. */
export type FlatArray = { shape: number[]; data: number[] };

const npyTypes: Record<string, (buffer: ArrayBuffer) => ArrayLike<number | bigint>> = {
  f4: (b) => new Float32Array(b),
  f8: (b) => new Float64Array(b),
  i1: (b) => new Int8Array(b),
  i2: (b) => new Int16Array(b),
  i4: (b) => new Int32Array(b),
  i8: (b) => new BigInt64Array(b),
  u1: (b) => new Uint8Array(b),
  u2: (b) => new Uint16Array(b),
  u4: (b) => new Uint32Array(b),
  u8: (b) => new BigUint64Array(b),
  b1: (b) => new Uint8Array(b),
};

/** Reads one array saved with numpy.save; returns why not when it cannot. */
export function decodeNpy(bytes: Uint8Array): FlatArray | string {
  if (bytes.length < 10 || bytes[0] !== 0x93 || new TextDecoder().decode(bytes.subarray(1, 6)) !== "NUMPY") return "it does not start like a .npy file";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const start = bytes[6] === 1 ? 10 : 12;
  const headerLength = bytes[6] === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr':\s*'([<>|=])([a-z]\d+)'/.exec(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) return "its header has no element type or shape";
  if (/'fortran_order':\s*True/.test(header)) return "it is stored in Fortran order; save a C-ordered array (numpy.ascontiguousarray)";
  if (descr[1] === ">") return "it is big-endian; save it little-endian";
  const read = npyTypes[descr[2]];
  if (!read) return `its element type ${descr[2]} is not supported (use float32/64, int8–64, uint8–64 or bool)`;
  const shape = shapeText.split(",").map((d) => d.trim()).filter(Boolean).map(Number);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return "its shape is not a list of whole numbers";
  const byteCount = shape.reduce((a, b) => a * b, 1) * Number(descr[2].slice(1));
  const dataStart = start + headerLength;
  if (bytes.length - dataStart < byteCount) return "it holds fewer bytes than its shape needs — it looks truncated";
  // Copied into a fresh, aligned buffer of its own: a Buffer may be a view into a shared pool.
  return { shape, data: Array.from(read(new Uint8Array(bytes.subarray(dataStart, dataStart + byteCount)).buffer), Number) };
}

// What the parent sends the validation child on stdin, and the JSON lines it answers with.

const flatTensorSchema = z.object({ type: z.string(), shape: z.array(z.number().int().min(0)), data: z.array(z.number()) }) satisfies z.ZodType<FlatArray & { type: string }>;
export type FlatTensor = z.infer<typeof flatTensorSchema>;

export const childRequestSchema = z.object({
  modelPath: z.string(),
  /** Every user input with all its dimensions resolved. */
  inputs: z.array(z.object({ name: z.string(), type: z.string(), shape: z.array(z.number().int().min(0)) })),
  runs: z.number().int().min(1),
  testVector: z
    .object({ inputs: z.record(z.string(), flatTensorSchema), outputs: z.record(z.string(), flatTensorSchema), tolerance: z.number().optional() })
    .optional(),
});
export type ChildRequest = z.infer<typeof childRequestSchema>;

const childTimingsSchema = z.object({ warmupMs: z.number(), runs: z.number().int(), p50Ms: z.number(), p95Ms: z.number(), peakRssBytes: z.number() });

export const childMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("progress"), step: z.string(), fraction: z.number().min(0).max(1) }),
  /** The model loaded, ran on generated inputs and was timed: all its own verdict needs. Sent before the test vector runs. */
  childTimingsSchema.extend({ type: z.literal("timings") }),
  childTimingsSchema.extend({
    type: z.literal("result"),
    /** The test vector's run, when one was given: problems are the vector's, not the model's. */
    testVector: z.object({ maxAbsDiff: z.number().nullable(), problems: z.array(z.string()) }).nullable(),
  }),
  z.object({ type: z.literal("failure"), problem: z.string(), peakRssBytes: z.number().optional() }),
]);
export type ChildMessage = z.infer<typeof childMessageSchema>;
