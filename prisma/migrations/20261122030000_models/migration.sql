-- The model registry: models with immutable, validated ONNX versions.
CREATE TYPE "ModelVersionStatus" AS ENUM ('fetching', 'validating', 'ready', 'invalid', 'failed');

CREATE TABLE "Model" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "createdById" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "Model_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "ModelVersion" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "modelId" UUID NOT NULL,
    "number" INTEGER NOT NULL,
    "status" "ModelVersionStatus" NOT NULL DEFAULT 'fetching',
    "source" JSONB NOT NULL,
    "sha256" TEXT,
    "bytes" BIGINT,
    "opset" INTEGER,
    "producer" TEXT,
    "signature" JSONB,
    "validation" JSONB,
    "error" TEXT,
    "jobId" UUID,
    "createdById" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ModelVersion_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "Model_orgId_name_key" ON "Model"("orgId", "name");
CREATE UNIQUE INDEX "ModelVersion_modelId_number_key" ON "ModelVersion"("modelId", "number");
CREATE INDEX "ModelVersion_orgId_idx" ON "ModelVersion"("orgId");

ALTER TABLE "Model" ADD CONSTRAINT "Model_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "ModelVersion" ADD CONSTRAINT "ModelVersion_modelId_fkey" FOREIGN KEY ("modelId") REFERENCES "Model"("id") ON DELETE CASCADE ON UPDATE CASCADE;
