import type { Db, Tx } from "../db";

// Every place a row names a blob by its sha256 — the sweep keeps a blob that any of them names.
// A new column or JSON field that holds a blob digest must be added here, or the sweep will take
// its blobs once they are past the grace window.
//
//   ModelVersion.sha256            an ONNX version's file
//   ModelVersion.files[].sha256    a LeRobot checkpoint's files
//   Device.currentSha256           the model a device runs (kept for a rollback even if its version goes)
//   CaptureFrame.sha256            a capture's frames
//   CaptureChunk.sha256            a capture's chunk manifests
//   CaptureSnapshot.sourceSha256   a trainer's splat file as sent
//   CaptureSnapshot.spzSha256      and its SPZ
//   Episode.storedFiles.*.sha256   an episode's episode.json and videos (deleted episodes too: they can be restored)
//   Episode.rawFiles.*.sha256      an episode's raw files, from registration until it is in the dataset
//   Dataset.buildFiles.*.sha256    the files of a dataset's current build
//   ArchiveUpload.files.*.sha256   an uploaded archive's files, until it is imported (or discarded)
//   ModelUpload.pieces[].blob      the pieces of a model upload in progress (.sha256 when recorded
//                                  by an earlier version, without a header: upload-pieces.ts)
//   EdgeUpload.pieces[].blob       the pieces of an agent's episode upload in progress (through a bucket; .sha256 likewise)
//   EdgeUploadFile.sha256          its files that arrived whole, until the episode is registered
//   Job.payload (queued, running)  a job's inputs kept as blobs: a sealed hub token, a test vector
//
// Not references: DeviceHealthSample.sha256 (what a check saw on a device).

/** Of these digests, the ones some row names. */
export async function namedBlobs(db: Db | Tx, shas: string[]): Promise<Set<string>> {
  if (!shas.length) return new Set();
  const rows = await db.$queryRaw<{ sha256: string }[]>`
    SELECT "sha256" FROM "ModelVersion" WHERE "sha256" = ANY(${shas}::text[])
    UNION SELECT f->>'sha256' FROM "ModelVersion" v, jsonb_array_elements(CASE WHEN jsonb_typeof(v."files") = 'array' THEN v."files" ELSE '[]'::jsonb END) f
      WHERE f->>'sha256' = ANY(${shas}::text[])
    UNION SELECT f.value->>'sha256' FROM "Episode" e, jsonb_each(CASE WHEN jsonb_typeof(e."storedFiles") = 'object' THEN e."storedFiles" ELSE '{}'::jsonb END) f
      WHERE f.value->>'sha256' = ANY(${shas}::text[])
    UNION SELECT f.value->>'sha256' FROM "Episode" e, jsonb_each(CASE WHEN jsonb_typeof(e."rawFiles") = 'object' THEN e."rawFiles" ELSE '{}'::jsonb END) f
      WHERE f.value->>'sha256' = ANY(${shas}::text[])
    UNION SELECT f.value->>'sha256' FROM "Dataset" d, jsonb_each(CASE WHEN jsonb_typeof(d."buildFiles") = 'object' THEN d."buildFiles" ELSE '{}'::jsonb END) f
      WHERE f.value->>'sha256' = ANY(${shas}::text[])
    UNION SELECT f.value->>'sha256' FROM "ArchiveUpload" a, jsonb_each(CASE WHEN jsonb_typeof(a."files") = 'object' THEN a."files" ELSE '{}'::jsonb END) f
      WHERE f.value->>'sha256' = ANY(${shas}::text[])
    UNION SELECT COALESCE(f->>'blob', f->>'sha256') FROM "ModelUpload" u, jsonb_array_elements(CASE WHEN jsonb_typeof(u."pieces") = 'array' THEN u."pieces" ELSE '[]'::jsonb END) f
      WHERE COALESCE(f->>'blob', f->>'sha256') = ANY(${shas}::text[])
    UNION SELECT COALESCE(f->>'blob', f->>'sha256') FROM "EdgeUpload" u, jsonb_array_elements(CASE WHEN jsonb_typeof(u."pieces") = 'array' THEN u."pieces" ELSE '[]'::jsonb END) f
      WHERE COALESCE(f->>'blob', f->>'sha256') = ANY(${shas}::text[])
    UNION SELECT "sha256" FROM "EdgeUploadFile" WHERE "sha256" = ANY(${shas}::text[])
    UNION SELECT "currentSha256" FROM "Device" WHERE "currentSha256" = ANY(${shas}::text[])
    UNION SELECT "sha256" FROM "CaptureFrame" WHERE "sha256" = ANY(${shas}::text[])
    UNION SELECT "sha256" FROM "CaptureChunk" WHERE "sha256" = ANY(${shas}::text[])
    UNION SELECT "sourceSha256" FROM "CaptureSnapshot" WHERE "sourceSha256" = ANY(${shas}::text[])
    UNION SELECT "spzSha256" FROM "CaptureSnapshot" WHERE "spzSha256" = ANY(${shas}::text[])
    UNION SELECT m[1] FROM "Job" j, regexp_matches(j."payload"::text, '([0-9a-f]{64})', 'g') m
      WHERE j."status" IN ('queued', 'running') AND m[1] = ANY(${shas}::text[])`;
  return new Set(rows.map((r) => r.sha256));
}
