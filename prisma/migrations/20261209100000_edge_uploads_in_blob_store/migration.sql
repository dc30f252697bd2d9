-- Agents' episode uploads in progress with a bucket: their state here, their bytes in the blob
-- store (no folder shared by web processes).
CREATE TABLE "EdgeUpload" (
    "id" TEXT NOT NULL,
    "orgId" UUID NOT NULL,
    "repoId" TEXT NOT NULL,
    "episodeIndex" INTEGER NOT NULL,
    "size" BIGINT NOT NULL,
    "offset" BIGINT NOT NULL DEFAULT 0,
    "metadata" JSONB NOT NULL,
    "head" BYTEA NOT NULL,
    "sums" BYTEA NOT NULL,
    "pieces" JSONB NOT NULL DEFAULT '[]',
    "committed" BOOLEAN NOT NULL DEFAULT false,
    "registered" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "EdgeUpload_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "EdgeUploadFile" (
    "uploadId" TEXT NOT NULL,
    "fileIndex" INTEGER NOT NULL,
    "path" TEXT NOT NULL,
    "sha256" TEXT NOT NULL,
    "bytes" BIGINT NOT NULL,

    CONSTRAINT "EdgeUploadFile_pkey" PRIMARY KEY ("uploadId","fileIndex")
);

CREATE INDEX "EdgeUpload_orgId_repoId_episodeIndex_idx" ON "EdgeUpload"("orgId", "repoId", "episodeIndex");
CREATE INDEX "EdgeUpload_updatedAt_idx" ON "EdgeUpload"("updatedAt");
CREATE INDEX "EdgeUploadFile_sha256_idx" ON "EdgeUploadFile"("sha256");

ALTER TABLE "EdgeUpload" ADD CONSTRAINT "EdgeUpload_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "EdgeUploadFile" ADD CONSTRAINT "EdgeUploadFile_uploadId_fkey" FOREIGN KEY ("uploadId") REFERENCES "EdgeUpload"("id") ON DELETE CASCADE ON UPDATE CASCADE;
