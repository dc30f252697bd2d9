-- A target may export each run's checkpoint to ONNX on the host; a run remembers the
-- checkpoints its host holds (any of them can be brought home on request) and its ONNX version.
ALTER TABLE "TrainingTarget" ADD COLUMN "exportCommand" TEXT NOT NULL DEFAULT '';
ALTER TABLE "TrainingRun" ADD COLUMN "hostCheckpoints" INTEGER[] NOT NULL DEFAULT ARRAY[]::INTEGER[];
ALTER TABLE "TrainingRun" ADD COLUMN "exportVersionId" UUID;
ALTER TABLE "TrainingRun" ADD COLUMN "exportError" TEXT;
