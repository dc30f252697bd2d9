-- Live capture sessions: frames, chunk manifests, posted joint states and trainer snapshots.
CREATE TYPE "CaptureStatus" AS ENUM ('active', 'stopped');

CREATE TABLE "CaptureSession" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "status" "CaptureStatus" NOT NULL DEFAULT 'active',
    "chunkSize" INTEGER NOT NULL DEFAULT 50,
    "robotId" UUID,
    "generation" INTEGER NOT NULL DEFAULT 0,
    "lastSeq" INTEGER NOT NULL DEFAULT 0,
    "frameCount" INTEGER NOT NULL DEFAULT 0,
    "chunkCount" INTEGER NOT NULL DEFAULT 0,
    "chunkedThroughSeq" INTEGER NOT NULL DEFAULT 0,
    "snapshotCount" INTEGER NOT NULL DEFAULT 0,
    "trainerClaimId" UUID,
    "trainerName" TEXT,
    "trainerUserId" UUID,
    "trainerClaimedAt" TIMESTAMP(3),
    "trainerSeenAt" TIMESTAMP(3),
    "trainerIteration" INTEGER,
    "trainerGaussians" INTEGER,
    "trainerProgress" DOUBLE PRECISION,
    "createdById" UUID,
    "createdBy" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "stoppedAt" TIMESTAMP(3),
    CONSTRAINT "CaptureSession_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "CaptureSession_orgId_createdAt_idx" ON "CaptureSession"("orgId", "createdAt");
-- The organisation's active session, which the earlier capture endpoints act on: at most one.
CREATE UNIQUE INDEX "CaptureSession_orgId_active_key" ON "CaptureSession"("orgId") WHERE "status" = 'active';
ALTER TABLE "CaptureSession" ADD CONSTRAINT "CaptureSession_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "CaptureSession" ADD CONSTRAINT "CaptureSession_robotId_fkey" FOREIGN KEY ("robotId") REFERENCES "Robot"("id") ON DELETE SET NULL ON UPDATE CASCADE;

CREATE TABLE "CaptureFrame" (
    "id" BIGSERIAL NOT NULL,
    "orgId" UUID NOT NULL,
    "sessionId" UUID NOT NULL,
    "seq" INTEGER NOT NULL,
    "sha256" TEXT NOT NULL,
    "bytes" INTEGER NOT NULL,
    "format" TEXT NOT NULL,
    "width" INTEGER NOT NULL,
    "height" INTEGER NOT NULL,
    "takenAt" TIMESTAMP(3) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "CaptureFrame_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "CaptureFrame_sessionId_seq_key" ON "CaptureFrame"("sessionId", "seq");
CREATE INDEX "CaptureFrame_sha256_idx" ON "CaptureFrame"("sha256");
ALTER TABLE "CaptureFrame" ADD CONSTRAINT "CaptureFrame_sessionId_fkey" FOREIGN KEY ("sessionId") REFERENCES "CaptureSession"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "CaptureChunk" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "sessionId" UUID NOT NULL,
    "index" INTEGER NOT NULL,
    "firstSeq" INTEGER NOT NULL,
    "lastSeq" INTEGER NOT NULL,
    "frameCount" INTEGER NOT NULL,
    "sha256" TEXT NOT NULL,
    "bytes" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "CaptureChunk_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "CaptureChunk_sessionId_index_key" ON "CaptureChunk"("sessionId", "index");
CREATE INDEX "CaptureChunk_sha256_idx" ON "CaptureChunk"("sha256");
ALTER TABLE "CaptureChunk" ADD CONSTRAINT "CaptureChunk_sessionId_fkey" FOREIGN KEY ("sessionId") REFERENCES "CaptureSession"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "CaptureJointState" (
    "id" BIGSERIAL NOT NULL,
    "orgId" UUID NOT NULL,
    "sessionId" UUID NOT NULL,
    "takenAt" TIMESTAMP(3) NOT NULL,
    "angles" DOUBLE PRECISION[],
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "CaptureJointState_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "CaptureJointState_sessionId_takenAt_idx" ON "CaptureJointState"("sessionId", "takenAt");
ALTER TABLE "CaptureJointState" ADD CONSTRAINT "CaptureJointState_sessionId_fkey" FOREIGN KEY ("sessionId") REFERENCES "CaptureSession"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "CaptureSnapshot" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "sessionId" UUID NOT NULL,
    "iteration" INTEGER NOT NULL,
    "format" TEXT NOT NULL,
    "splats" INTEGER NOT NULL,
    "shDegree" INTEGER NOT NULL,
    "sourceSha256" TEXT NOT NULL,
    "sourceBytes" INTEGER NOT NULL,
    "spzSha256" TEXT NOT NULL,
    "spzBytes" INTEGER NOT NULL,
    "bounds" JSONB NOT NULL,
    "trainerName" TEXT NOT NULL,
    "lastSeq" INTEGER NOT NULL,
    "frameCount" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "CaptureSnapshot_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "CaptureSnapshot_sessionId_createdAt_idx" ON "CaptureSnapshot"("sessionId", "createdAt");
CREATE INDEX "CaptureSnapshot_sourceSha256_idx" ON "CaptureSnapshot"("sourceSha256");
CREATE INDEX "CaptureSnapshot_spzSha256_idx" ON "CaptureSnapshot"("spzSha256");
ALTER TABLE "CaptureSnapshot" ADD CONSTRAINT "CaptureSnapshot_sessionId_fkey" FOREIGN KEY ("sessionId") REFERENCES "CaptureSession"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "CaptureBlobRelease" (
    "sha256" TEXT NOT NULL,
    "releasedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "CaptureBlobRelease_pkey" PRIMARY KEY ("sha256")
);
