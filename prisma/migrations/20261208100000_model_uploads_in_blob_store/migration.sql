-- Resumable model uploads: their pieces in the blob store, their state here (no folder shared by web processes).
CREATE TABLE "ModelUpload" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "modelId" UUID NOT NULL,
    "userId" UUID NOT NULL,
    "total" BIGINT NOT NULL,
    "sha256" TEXT,
    "filename" TEXT,
    "dims" JSONB NOT NULL,
    "testVector" JSONB,
    "pieces" JSONB NOT NULL DEFAULT '[]',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ModelUpload_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "ModelUpload_orgId_idx" ON "ModelUpload"("orgId");
CREATE INDEX "ModelUpload_modelId_idx" ON "ModelUpload"("modelId");
CREATE INDEX "ModelUpload_updatedAt_idx" ON "ModelUpload"("updatedAt");

ALTER TABLE "ModelUpload" ADD CONSTRAINT "ModelUpload_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "ModelUpload" ADD CONSTRAINT "ModelUpload_modelId_fkey" FOREIGN KEY ("modelId") REFERENCES "Model"("id") ON DELETE CASCADE ON UPDATE CASCADE;
