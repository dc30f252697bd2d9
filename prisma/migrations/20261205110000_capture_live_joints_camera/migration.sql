-- A capture session follows its arm's live-joints command, and knows its camera.
ALTER TABLE "CaptureSession" ADD COLUMN "liveCommandId" UUID;
ALTER TABLE "CaptureSession" ADD COLUMN "camera" JSONB;
CREATE UNIQUE INDEX "CaptureSession_liveCommandId_key" ON "CaptureSession"("liveCommandId");
