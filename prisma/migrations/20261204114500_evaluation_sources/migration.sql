-- A scoring of a dataset Gantry does not hold: a folder on the server or a hub dataset id,
-- recorded with the version of it that was scored. Exactly one of dataset and source is set.
ALTER TABLE "DatasetEvaluation" ALTER COLUMN "datasetId" DROP NOT NULL;
ALTER TABLE "DatasetEvaluation" ADD COLUMN "sourceKind" TEXT;
ALTER TABLE "DatasetEvaluation" ADD COLUMN "sourceRef" TEXT;
ALTER TABLE "DatasetEvaluation" ADD COLUMN "sourceRevision" TEXT;
ALTER TABLE "DatasetEvaluation" ADD COLUMN "sourceEndpoint" TEXT;
ALTER TABLE "DatasetEvaluation" ADD COLUMN "sourceVersion" TEXT;
ALTER TABLE "DatasetEvaluation" ADD CONSTRAINT "DatasetEvaluation_source_check" CHECK (
  ("datasetId" IS NOT NULL AND "sourceKind" IS NULL AND "sourceRef" IS NULL)
  OR ("datasetId" IS NULL AND "sourceKind" IN ('folder', 'hub') AND "sourceRef" IS NOT NULL)
);
CREATE INDEX "DatasetEvaluation_orgId_sourceKind_createdAt_idx" ON "DatasetEvaluation"("orgId", "sourceKind", "createdAt");
