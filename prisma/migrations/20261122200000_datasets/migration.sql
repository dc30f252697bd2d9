-- Datasets built from edge episodes (or imported), in LeRobot v3.0's layout.
CREATE TYPE "EpisodeStatus" AS ENUM ('encoding', 'ready', 'failed');

CREATE TABLE "Dataset" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "repoId" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "source" TEXT NOT NULL DEFAULT 'edge',
    "importedVersion" TEXT,
    "fps" INTEGER,
    "robotType" TEXT,
    "features" JSONB,
    "missingVideos" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "buildId" TEXT,
    "builtAt" TIMESTAMP(3),
    "createdById" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "Dataset_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "Episode" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "datasetId" UUID NOT NULL,
    "number" INTEGER NOT NULL,
    "status" "EpisodeStatus" NOT NULL DEFAULT 'encoding',
    "mode" TEXT NOT NULL,
    "task" TEXT NOT NULL DEFAULT '',
    "fps" INTEGER,
    "length" INTEGER,
    "cameras" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "datasetIndex" INTEGER,
    "error" TEXT,
    "jobId" UUID,
    "deletedAt" TIMESTAMP(3),
    "createdById" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "Episode_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "Dataset_repoId_key" ON "Dataset"("repoId");
CREATE INDEX "Dataset_orgId_idx" ON "Dataset"("orgId");
CREATE UNIQUE INDEX "Episode_datasetId_number_key" ON "Episode"("datasetId", "number");
CREATE INDEX "Episode_orgId_idx" ON "Episode"("orgId");

ALTER TABLE "Dataset" ADD CONSTRAINT "Dataset_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Episode" ADD CONSTRAINT "Episode_datasetId_fkey" FOREIGN KEY ("datasetId") REFERENCES "Dataset"("id") ON DELETE CASCADE ON UPDATE CASCADE;
