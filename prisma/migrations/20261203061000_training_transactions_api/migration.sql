-- Targets of kind "transactions-api" (the earlier cloud training API): its address and sealed
-- token; the model directory is reached over SSH like any host. A run keeps its transaction id,
-- the status the API last gave, and when the final checkpoint was first seen in the folder while
-- the API still said TRAINING (the folder is the fallback for a status stuck there).
ALTER TABLE "TrainingTarget" ADD COLUMN "apiUrl" TEXT;
ALTER TABLE "TrainingTarget" ADD COLUMN "apiToken" TEXT;
ALTER TABLE "TrainingRun" ADD COLUMN "transactionId" TEXT;
ALTER TABLE "TrainingRun" ADD COLUMN "apiStatus" TEXT;
ALTER TABLE "TrainingRun" ADD COLUMN "finalCheckpointSeenAt" TIMESTAMP(3);
