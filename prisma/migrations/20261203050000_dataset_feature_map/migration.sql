-- Imported datasets keep their own feature names (an action feature named "actions", a camera
-- named "image"), and episodes whose videos the import lacked are kept and flagged.
ALTER TABLE "Dataset" ADD COLUMN "featureMap" JSONB;
ALTER TABLE "Episode" ADD COLUMN "missingVideos" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[];
