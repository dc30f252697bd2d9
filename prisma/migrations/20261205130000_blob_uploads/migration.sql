-- Multipart uploads to object storage, kept as their parts complete so a put resumes after a restart.
CREATE TABLE "BlobUpload" (
    "id" UUID NOT NULL,
    "store" TEXT NOT NULL,
    "sha256" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "uploadId" TEXT NOT NULL,
    "partBytes" INTEGER NOT NULL,
    "heldUntil" TIMESTAMP(3) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "BlobUpload_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "BlobUploadPart" (
    "uploadId" UUID NOT NULL,
    "number" INTEGER NOT NULL,
    "etag" TEXT NOT NULL,
    "sha256" TEXT NOT NULL,
    "bytes" INTEGER NOT NULL,

    CONSTRAINT "BlobUploadPart_pkey" PRIMARY KEY ("uploadId","number")
);

CREATE UNIQUE INDEX "BlobUpload_store_sha256_key" ON "BlobUpload"("store", "sha256");
CREATE INDEX "BlobUpload_updatedAt_idx" ON "BlobUpload"("updatedAt");

ALTER TABLE "BlobUploadPart" ADD CONSTRAINT "BlobUploadPart_uploadId_fkey" FOREIGN KEY ("uploadId") REFERENCES "BlobUpload"("id") ON DELETE CASCADE ON UPDATE CASCADE;
