import { z } from "zod";
import { signatureSchema } from "../models/validation.schemas";

/** What the model is, for people and for the examples the endpoint page writes. */
export const modelTypeSchema = z.enum(["policy", "vision", "generic"]);

/**
 * Where the endpoint's sessions run. The model server's onnxruntime build runs on the CPU;
 * the wizard lists the other providers onnxruntime reports, as not available here.
 */
export const executionProviderSchema = z.enum(["cpu"]);

/** Names go into URLs (`/v2/models/{name}`): lowercase letters, digits and dashes, 1–63. */
export const endpointNameSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be 1–63 lowercase letters, digits or dashes, starting and ending with a letter or digit");

const normalisation = z.object({
  mean: z.union([z.number(), z.array(z.number()).min(1)]),
  std: z.union([z.number().positive(), z.array(z.number().positive()).min(1)]),
});

export const endpointSettingsSchema = z.object({
  modelType: modelTypeSchema.default("generic"),
  executionProvider: executionProviderSchema.default("cpu"),
  /** Intra-op threads of the endpoint's onnxruntime session. */
  threads: z.number().int().min(1).max(64).default(1),
  /** Largest first dimension one request may send. */
  maxBatch: z.number().int().min(1).max(65_536).default(256),
  /** Requests run at once; more wait in a queue of at most `maxQueue`, beyond it 429. */
  concurrency: z.number().int().min(1).max(256).default(4),
  maxQueue: z.number().int().min(0).max(10_000).default(64),
  /** Overrides MODEL_INFERENCE_TIMEOUT for this endpoint. */
  timeoutMs: z.number().int().min(1).max(3_600_000).optional(),
  /** Per float input: x' = (x - mean) / std, a scalar or one value per last-axis channel. */
  preprocessing: z.record(z.string(), normalisation).optional(),
});
export type EndpointSettings = z.output<typeof endpointSettingsSchema>;

export const endpointStatusSchema = z.enum(["deploying", "ready", "failed", "stopped"]);

export const createEndpointInput = z.object({
  name: endpointNameSchema,
  modelVersionId: z.uuid(),
  settings: endpointSettingsSchema.default(endpointSettingsSchema.parse({})),
});

export const updateEndpointVersionInput = z.object({ endpointId: z.uuid(), modelVersionId: z.uuid() });

export const endpointViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  status: endpointStatusSchema,
  modelVersionId: z.string(),
  modelName: z.string(),
  versionNumber: z.number().int(),
  settings: endpointSettingsSchema,
  error: z.string().nullable(),
  /** Set when its version was validated again and found invalid: the endpoint still serves it. */
  versionWarning: z.string().nullable(),
  /** The job that last deployed it. */
  jobId: z.string().nullable(),
  createdAt: z.date(),
  updatedAt: z.date(),
});
export type EndpointView = z.infer<typeof endpointViewSchema>;

export const endpointIdInput = z.object({ endpointId: z.uuid() });

/** One endpoint with what its page needs: the signature and the URLs to call it at. */
export const endpointDetailSchema = endpointViewSchema.extend({
  signature: signatureSchema,
  urls: z.object({ infer: z.string(), predict: z.string(), metadata: z.string(), base: z.string() }),
});
export type EndpointDetail = z.infer<typeof endpointDetailSchema>;

/** What the wizard's hardware step offers. */
export const servingHardwareSchema = z.object({
  cpus: z.number().int().min(1),
  providers: z.array(z.object({ name: z.string(), available: z.boolean(), note: z.string() })),
});
export type ServingHardware = z.infer<typeof servingHardwareSchema>;

/** The try-it form: inputs by name as nested arrays, as `/predict/{name}` takes them. */
export const tryEndpointInput = z.object({ endpointId: z.uuid(), inputs: z.record(z.string().max(200), z.unknown()) });
export const tryEndpointResultSchema = z.object({ status: z.number().int(), ms: z.number(), body: z.unknown() });

/** What the model server needs to serve one endpoint. */
export const servableEndpointSchema = z.object({
  id: z.string(),
  orgId: z.string(),
  name: z.string(),
  modelName: z.string(),
  versionId: z.string(),
  versionNumber: z.number().int(),
  sha256: z.string(),
  signature: signatureSchema,
  settings: endpointSettingsSchema,
  /** The model file's size, when known: smaller models load first. */
  bytes: z.number().int().nonnegative().nullable().optional(),
  /** Why its deploy failed, for an endpoint that failed: known to the model server, but not loaded. */
  failure: z.string().nullable().optional(),
});
export type ServableEndpoint = z.infer<typeof servableEndpointSchema>;
