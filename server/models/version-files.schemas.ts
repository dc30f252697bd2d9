import { z } from "zod";

// A version's files as a downloader sees them (the portal's answer and the agent's reading of it).

export const versionFileSchema = z.object({ path: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int().nonnegative() });
export const versionManifestSchema = z.object({
  modelId: z.uuid(),
  model: z.string(),
  versionId: z.uuid(),
  number: z.number(),
  kind: z.string(),
  status: z.string(),
  files: z.array(versionFileSchema),
});
export type VersionManifest = z.infer<typeof versionManifestSchema>;

/** `GET /api/edge/models/{repo_id|run id}`: the checkpoint `gantry-agent pull-model` downloads. */
export const pullManifestSchema = versionManifestSchema.extend({
  name: z.string(),
  run: z.object({ id: z.uuid(), name: z.string(), step: z.number() }),
  files: z.array(versionFileSchema.extend({ url: z.string() })),
});
export type PullManifest = z.infer<typeof pullManifestSchema>;
