import { z } from "zod";
import { sha256Schema } from "../storage/blob-store";

export const modelNameSchema = z
  .string()
  .trim()
  .min(1, "Give the model a name")
  .max(80, "A model name is at most 80 characters")
  .regex(/^[A-Za-z0-9 ._-]+$/, "A model name may use letters, digits, spaces, dashes, underscores and dots only");

export const modelIdInput = z.object({ modelId: z.uuid() });
export const versionIdInput = z.object({ versionId: z.uuid() });

export const createModelInput = z.object({ name: modelNameSchema, description: z.string().max(2000).default("") });
export const updateModelInput = z.object({ modelId: z.uuid(), name: modelNameSchema.optional(), description: z.string().max(2000).optional() });

const MAX_DIM_VALUE = 65_536;
const dimValueSchema = z
  .number({ error: "must be a whole number" })
  .int("must be a whole number")
  .min(1, "must be at least 1")
  .max(MAX_DIM_VALUE, `must be at most ${MAX_DIM_VALUE}, the largest value a dimension may be given`);

/** Values for symbolic input dimensions, by name, used when validating. */
export const dimsSchema = z.record(z.string().max(100, "A dimension name is at most 100 characters"), dimValueSchema).default({});

export const hubRepoSchema = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/, "A hub repository is written owner/name, e.g. lerobot/act_so100")
  .refine((s) => !s.includes(".."), "A hub repository name may not contain ..");
export const hubRevisionSchema = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._/-]+$/, "A revision is a branch, tag or commit: letters, digits, dots, dashes, underscores and slashes")
  .refine((s) => !s.split("/").includes("..") && !s.startsWith("/"), "A revision may not contain .. or start with /");
export const hubFilenameSchema = z
  .string()
  .trim()
  .min(1, "Name the file in the repository, e.g. model.onnx")
  .max(500)
  .refine((s) => !s.startsWith("/"), "The file name is relative to the repository: drop the leading /")
  .refine((s) => !s.split(/[\\/]/).includes(".."), "The file name may not contain ..")
  .refine((s) => !/[\u0000-\u001f?#]/.test(s), "The file name may not contain control characters, ? or #");

export const httpUrlSchema = z
  .url({ protocol: /^https?$/, error: "Give an http:// or https:// address" })
  .max(2000)
  // The address is shown to everyone in the organisation: no user name or password in it.
  .refine((u) => !URL.canParse(u) || (!new URL(u).username && !new URL(u).password), "Take the user name and password out of the address; it is shown to everyone in the organisation");

/**
 * Where a version came from, as stored; a hub token is never part of it. A URL is kept with its
 * query's values redacted (signed URLs carry secrets there) and, when that hid anything, sealed
 * whole for the fetch (source-url.ts); the sealed form never leaves the server.
 */
export const versionSourceSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("upload"), filename: z.string().max(500).optional() }),
  z.object({ kind: z.literal("url"), url: z.string(), sealedUrl: z.string().optional() }),
  z.object({ kind: z.literal("hub"), endpoint: z.string(), repo: z.string(), revision: z.string(), filename: z.string(), isPrivate: z.boolean() }),
  /** The checkpoint a training run brought home. */
  z.object({ kind: z.literal("training"), runId: z.uuid(), runName: z.string(), datasetId: z.uuid(), repoId: z.string(), step: z.number().int(), target: z.string() }),
]);
export type VersionSource = z.infer<typeof versionSourceSchema>;

export const addVersionFromUrlInput = z.object({ modelId: z.uuid(), url: httpUrlSchema, dims: dimsSchema });
export const addVersionFromHubInput = z.object({
  modelId: z.uuid(),
  repo: hubRepoSchema,
  revision: hubRevisionSchema.default("main"),
  filename: hubFilenameSchema,
  /** Used for the download only; never stored or logged. */
  token: z.string().trim().min(1).max(500).optional(),
  dims: dimsSchema,
});
/** The largest test vector, as JSON: in a request, beside an upload, or in a session. */
export const MAX_TEST_VECTOR_BYTES = 16 * 1024 * 1024;

/**
 * Known inputs, and optionally the outputs they should give, in any form test-vector.ts reads:
 * { inputs: { name: nested arrays or { shape, data } }, outputs?, tolerance? }, or the Open
 * Inference Protocol's { inputs: [{ name, shape, datatype, data }] }. Checked against the model
 * by the service.
 */
export const testVectorInputSchema = z
  .json()
  .refine((v) => JSON.stringify(v).length <= MAX_TEST_VECTOR_BYTES, "A test vector is at most 16 MiB of JSON; use fewer or smaller arrays");

export const revalidateInput = z.object({
  versionId: z.uuid(),
  dims: dimsSchema,
  runs: z.number().int().min(1).max(10_000).optional(),
  testVector: testVectorInputSchema.optional(),
});

/** The optional JSON body that starts a resumable upload. */
export const startUploadBodySchema = z.object({ testVector: testVectorInputSchema.optional() });

export const uploadQuerySchema = z.object({
  sha256: sha256Schema.optional(),
  filename: z.string().max(500).optional(),
  /** JSON object of symbolic dimension values. */
  dims: z
    .string()
    .max(4000)
    .optional()
    .transform((s, ctx) => {
      if (!s) return {};
      let value: unknown;
      try {
        value = JSON.parse(s);
      } catch {
        value = undefined;
      }
      const parsed = value !== null && typeof value === "object" && !Array.isArray(value) ? dimsSchema.safeParse(value) : null;
      if (parsed?.success) return parsed.data;
      // Read after the field's name ("dims …"): say which dimension is wrong and how.
      const issue = parsed?.error.issues[0];
      const message = issue?.path.length ? `"${String(issue.path[0])}" ${issue.message}` : 'must be a JSON object of dimension names to whole numbers, e.g. {"batch":1}';
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    }),
});

export const versionStatusSchema = z.enum(["fetching", "validating", "ready", "invalid", "failed"]);

export const modelVersionSchema = z.object({
  id: z.uuid(),
  modelId: z.uuid(),
  number: z.number().int(),
  status: versionStatusSchema,
  source: versionSourceSchema,
  sha256: z.string().nullable(),
  bytes: z.number().nullable(),
  opset: z.number().int().nullable(),
  producer: z.string().nullable(),
  signature: z.unknown().nullable(),
  validation: z.unknown().nullable(),
  error: z.string().nullable(),
  jobId: z.string().nullable(),
  createdAt: z.date(),
});
export type ModelVersionView = z.infer<typeof modelVersionSchema>;

export const modelSummarySchema = z.object({
  id: z.uuid(),
  name: z.string(),
  description: z.string(),
  createdAt: z.date(),
  updatedAt: z.date(),
  versionCount: z.number().int(),
  latestVersion: modelVersionSchema.nullable(),
});
export const modelDetailSchema = modelSummarySchema.omit({ latestVersion: true }).extend({ versions: z.array(modelVersionSchema) });

/** A resumable upload: resume by sending from `received`. */
export const uploadStatusSchema = z.object({ uploadId: z.string(), received: z.number().int(), total: z.number().int() });

export const addVersionResultSchema = z.object({ versionId: z.uuid(), number: z.number().int(), jobId: z.uuid() });
