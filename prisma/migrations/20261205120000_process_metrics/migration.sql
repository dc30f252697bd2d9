-- Per-process counters and gauges (upload bytes, rate-limit refusals, open event streams):
-- each web and worker process writes its own every few seconds, so whichever process a
-- scrape lands on can answer with every process's figures.
CREATE TABLE "ProcessMetric" (
    "process" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "labels" TEXT NOT NULL DEFAULT '{}',
    "value" DOUBLE PRECISION NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ProcessMetric_pkey" PRIMARY KEY ("process", "name", "labels")
);

-- Throughput and durations are read by when jobs finished.
CREATE INDEX "Job_finishedAt_idx" ON "Job"("finishedAt");
