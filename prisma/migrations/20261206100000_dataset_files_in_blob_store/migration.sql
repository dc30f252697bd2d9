-- An episode's own files (episode.json, one MP4 per camera) as blobs: name → { sha256, bytes }.
ALTER TABLE "Episode" ADD COLUMN "storedFiles" JSONB;

-- A dataset's current build as blobs: path → { sha256, bytes }, and the builder's manifest.
ALTER TABLE "Dataset" ADD COLUMN "buildFiles" JSONB;
ALTER TABLE "Dataset" ADD COLUMN "buildManifest" JSONB;
