-- Dataset scoring: evaluations of a dataset's builds, and the organisation's quality gate.
ALTER TABLE "Org" ADD COLUMN "qualityGate" JSONB;

CREATE TABLE "DatasetEvaluation" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "datasetId" UUID NOT NULL,
    "buildId" TEXT,
    "status" TEXT NOT NULL DEFAULT 'queued',
    "metrics" TEXT[],
    "framesPerEpisode" INTEGER NOT NULL DEFAULT 6,
    "overall" DOUBLE PRECISION,
    "scores" JSONB,
    "report" JSONB,
    "error" TEXT,
    "jobId" UUID,
    "createdById" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),
    CONSTRAINT "DatasetEvaluation_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "DatasetEvaluation_datasetId_createdAt_idx" ON "DatasetEvaluation"("datasetId", "createdAt");
CREATE INDEX "DatasetEvaluation_orgId_idx" ON "DatasetEvaluation"("orgId");
ALTER TABLE "DatasetEvaluation" ADD CONSTRAINT "DatasetEvaluation_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "DatasetEvaluation" ADD CONSTRAINT "DatasetEvaluation_datasetId_fkey" FOREIGN KEY ("datasetId") REFERENCES "Dataset"("id") ON DELETE CASCADE ON UPDATE CASCADE;
