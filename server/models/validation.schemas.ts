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
  /** Peak resident memory of the process that ran the model. */
  peakRssBytes: z.number().nullable(),
  maxAbsDiff: z.number().nullable(),
  problems: z.array(z.string()),
});
export type ValidationReport = z.infer<typeof validationReportSchema>;

export type NestedNumbers = number | boolean | NestedNumbers[];
const nestedNumbersSchema: z.ZodType<NestedNumbers> = z.lazy(() => z.union([z.number(), z.boolean(), z.array(nestedNumbersSchema)]));

/** Inputs to feed and the outputs expected, by name, as nested arrays (JSON). */
export const testVectorSchema = z.object({
  inputs: z.record(z.string(), nestedNumbersSchema),
  outputs: z.record(z.string(), nestedNumbersSchema),
  /** When given, a larger maximum absolute difference fails the validation. */
  tolerance: z.number().min(0).optional(),
});
export type TestVector = z.infer<typeof testVectorSchema>;

// What the parent sends the validation child on stdin, and the JSON lines it answers with.

const flatTensorSchema = z.object({ type: z.string(), shape: z.array(z.number().int().min(0)), data: z.array(z.number()) });
export type FlatTensor = z.infer<typeof flatTensorSchema>;

export const childRequestSchema = z.object({
  modelPath: z.string(),
  /** Every user input with all its dimensions resolved. */
  inputs: z.array(z.object({ name: z.string(), type: z.string(), shape: z.array(z.number().int().min(0)) })),
  runs: z.number().int().min(1),
  testVector: z
    .object({ inputs: z.record(z.string(), flatTensorSchema), outputs: z.record(z.string(), flatTensorSchema) })
    .optional(),
});
export type ChildRequest = z.infer<typeof childRequestSchema>;

export const childMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("progress"), step: z.string(), fraction: z.number().min(0).max(1) }),
  z.object({
    type: z.literal("result"),
    warmupMs: z.number(),
    runs: z.number().int(),
    p50Ms: z.number(),
    p95Ms: z.number(),
    peakRssBytes: z.number(),
    maxAbsDiff: z.number().nullable(),
    problems: z.array(z.string()),
  }),
  z.object({ type: z.literal("failure"), problem: z.string(), peakRssBytes: z.number().optional() }),
]);
export type ChildMessage = z.infer<typeof childMessageSchema>;
