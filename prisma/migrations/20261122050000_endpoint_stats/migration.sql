-- Recent request statistics of serving endpoints: one row per endpoint per UTC minute, added to
-- by every model-server process (their flushes add counts, never overwrite them).
CREATE TABLE "EndpointRequestMinute" (
    "endpointId" UUID NOT NULL,
    "minute" TIMESTAMP(3) NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "buckets" INTEGER[] NOT NULL,
    "sumSeconds" DOUBLE PRECISION NOT NULL DEFAULT 0,
    CONSTRAINT "EndpointRequestMinute_pkey" PRIMARY KEY ("endpointId", "minute")
);

CREATE INDEX "EndpointRequestMinute_minute_idx" ON "EndpointRequestMinute"("minute");

ALTER TABLE "EndpointRequestMinute" ADD CONSTRAINT "EndpointRequestMinute_endpointId_fkey" FOREIGN KEY ("endpointId") REFERENCES "Endpoint"("id") ON DELETE CASCADE ON UPDATE CASCADE;
