-- A capture session follows its arm's live-joints command, and knows its camera.
ALTER TABLE "CaptureSession" ADD COLUMN "liveCommandId" UUID;
ALTER TABLE "CaptureSession" ADD COLUMN "camera" JSONB;
CREATE UNIQUE INDEX "CaptureSession_liveCommandId_key" ON "CaptureSession"("liveCommandId");

-- Joint states are thinned once a minute, looking at the last day's rows.
CREATE INDEX "CaptureJointState_createdAt_idx" ON "CaptureJointState"("createdAt");
