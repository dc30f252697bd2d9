-- An episode's own files (episode.json, one MP4 per camera) as blobs: name → { sha256, bytes }.
ALTER TABLE "Episode" ADD COLUMN "storedFiles" JSONB;
