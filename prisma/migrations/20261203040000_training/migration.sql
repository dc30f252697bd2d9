-- Training: targets (GPU hosts over SSH, Slurm login hosts), runs with their host-side state,
-- the log as read by byte offset, and the metrics parsed from it. Model versions gain a kind:
-- a run's checkpoint is a version of kind "lerobot-checkpoint" made of several files.
ALTER TABLE "ModelVersion" ADD COLUMN "kind" TEXT NOT NULL DEFAULT 'onnx';
ALTER TABLE "ModelVersion" ADD COLUMN "files" JSONB;
ALTER TABLE "ModelVersion" ADD COLUMN "trainingRunId" UUID;

CREATE TABLE "TrainingTarget" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "kind" TEXT NOT NULL DEFAULT 'ssh',
    "host" TEXT NOT NULL,
    "port" INTEGER NOT NULL DEFAULT 22,
    "username" TEXT NOT NULL,
    "authKind" TEXT NOT NULL,
    "credential" TEXT NOT NULL,
    "pinnedHostKey" TEXT,
    "workDir" TEXT NOT NULL,
    "activate" TEXT NOT NULL DEFAULT '',
    "commandTemplate" TEXT NOT NULL,
    "slurm" JSONB,
    "concurrency" INTEGER NOT NULL DEFAULT 1,
    "isDefault" BOOLEAN NOT NULL DEFAULT false,
    "facts" JSONB,
    "lastTestAt" TIMESTAMP(3),
    "createdById" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "TrainingTarget_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "TrainingTarget_orgId_name_key" ON "TrainingTarget"("orgId", "name");
ALTER TABLE "TrainingTarget" ADD CONSTRAINT "TrainingTarget_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "TrainingRun" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "targetId" UUID NOT NULL,
    "datasetId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "policyType" TEXT NOT NULL,
    "steps" INTEGER NOT NULL,
    "saveFreq" INTEGER NOT NULL,
    "logFreq" INTEGER NOT NULL,
    "extraArgs" TEXT NOT NULL DEFAULT '',
    "status" TEXT NOT NULL DEFAULT 'queued',
    "attempt" INTEGER NOT NULL DEFAULT 1,
    "runDir" TEXT,
    "outputDir" TEXT,
    "pid" INTEGER,
    "bootId" TEXT,
    "logOffset" BIGINT NOT NULL DEFAULT 0,
    "logTruncated" BOOLEAN NOT NULL DEFAULT false,
    "lastStep" INTEGER,
    "lastMetrics" JSONB,
    "exitCode" INTEGER,
    "error" TEXT,
    "unreachableSince" TIMESTAMP(3),
    "jobId" UUID,
    "checkpointVersionId" UUID,
    "createdById" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "cancelRequestedAt" TIMESTAMP(3),
    CONSTRAINT "TrainingRun_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "TrainingRun_orgId_createdAt_idx" ON "TrainingRun"("orgId", "createdAt");
CREATE INDEX "TrainingRun_targetId_status_idx" ON "TrainingRun"("targetId", "status");
ALTER TABLE "TrainingRun" ADD CONSTRAINT "TrainingRun_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "TrainingRun" ADD CONSTRAINT "TrainingRun_targetId_fkey" FOREIGN KEY ("targetId") REFERENCES "TrainingTarget"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "TrainingRun" ADD CONSTRAINT "TrainingRun_datasetId_fkey" FOREIGN KEY ("datasetId") REFERENCES "Dataset"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "TrainingLogChunk" (
    "id" BIGSERIAL NOT NULL,
    "runId" UUID NOT NULL,
    "attempt" INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    "text" TEXT NOT NULL,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "TrainingLogChunk_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "TrainingLogChunk_runId_attempt_offset_key" ON "TrainingLogChunk"("runId", "attempt", "offset");
ALTER TABLE "TrainingLogChunk" ADD CONSTRAINT "TrainingLogChunk_runId_fkey" FOREIGN KEY ("runId") REFERENCES "TrainingRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "TrainingMetric" (
    "id" BIGSERIAL NOT NULL,
    "runId" UUID NOT NULL,
    "kind" TEXT NOT NULL DEFAULT 'train',
    "step" INTEGER NOT NULL,
    "values" JSONB NOT NULL,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "TrainingMetric_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "TrainingMetric_runId_kind_step_idx" ON "TrainingMetric"("runId", "kind", "step");
ALTER TABLE "TrainingMetric" ADD CONSTRAINT "TrainingMetric_runId_fkey" FOREIGN KEY ("runId") REFERENCES "TrainingRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;
