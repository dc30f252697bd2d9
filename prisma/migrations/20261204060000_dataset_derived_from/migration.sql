-- A dataset made by excluding flagged episodes remembers the evaluation it was made from.
ALTER TABLE "Dataset" ADD COLUMN "derivedFrom" JSONB;
-- A scoring of a build already scored reuses that report, unless a fresh one is asked for.
ALTER TABLE "DatasetEvaluation" ADD COLUMN "fresh" BOOLEAN NOT NULL DEFAULT false;
