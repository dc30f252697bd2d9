-- Serving endpoints: a model version answered over HTTP by the serve process.
CREATE TYPE "EndpointStatus" AS ENUM ('deploying', 'ready', 'failed', 'stopped');

CREATE TABLE "Endpoint" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "modelVersionId" UUID NOT NULL,
    "status" "EndpointStatus" NOT NULL DEFAULT 'deploying',
    "settings" JSONB NOT NULL,
    "error" TEXT,
    "createdById" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "Endpoint_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "Endpoint_name_check" CHECK ("name" ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$')
);

CREATE UNIQUE INDEX "Endpoint_orgId_name_key" ON "Endpoint"("orgId", "name");
CREATE INDEX "Endpoint_modelVersionId_idx" ON "Endpoint"("modelVersionId");

ALTER TABLE "Endpoint" ADD CONSTRAINT "Endpoint_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Endpoint" ADD CONSTRAINT "Endpoint_modelVersionId_fkey" FOREIGN KEY ("modelVersionId") REFERENCES "ModelVersion"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
