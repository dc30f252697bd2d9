-- A target runs `concurrency` runs at once: each run waits in one of its target's queues.
ALTER TABLE "TrainingRun" ADD COLUMN "queueSlot" INTEGER NOT NULL DEFAULT 0;
