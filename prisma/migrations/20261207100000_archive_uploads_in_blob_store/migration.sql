-- Uploaded dataset archives: their files in the blob store until imported.
CREATE TABLE "ArchiveUpload" (
    "id" TEXT NOT NULL,
    "orgId" UUID NOT NULL,
    "userId" TEXT NOT NULL,
    "repoId" TEXT NOT NULL,
    "from" TEXT NOT NULL,
    "files" JSONB NOT NULL,
    "datasetId" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ArchiveUpload_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "ArchiveUpload_orgId_idx" ON "ArchiveUpload"("orgId");
CREATE INDEX "ArchiveUpload_datasetId_idx" ON "ArchiveUpload"("datasetId");

ALTER TABLE "ArchiveUpload" ADD CONSTRAINT "ArchiveUpload_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "ArchiveUpload" ADD CONSTRAINT "ArchiveUpload_datasetId_fkey" FOREIGN KEY ("datasetId") REFERENCES "Dataset"("id") ON DELETE CASCADE ON UPDATE CASCADE;
