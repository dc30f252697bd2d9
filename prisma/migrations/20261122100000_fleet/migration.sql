-- The fleet: devices reached over SSH, their health history, and rollouts of model versions.
CREATE TYPE "DeviceAuthKind" AS ENUM ('key', 'password');
CREATE TYPE "DeviceState" AS ENUM ('online', 'degraded', 'offline', 'unknown');
CREATE TYPE "DeploymentStatus" AS ENUM ('scheduled', 'running', 'succeeded', 'failed', 'aborted');
CREATE TYPE "DeploymentTargetState" AS ENUM ('pending', 'queued', 'running', 'succeeded', 'failed', 'rolled_back', 'skipped');

CREATE TABLE "Device" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "host" TEXT NOT NULL,
    "port" INTEGER NOT NULL DEFAULT 22,
    "username" TEXT NOT NULL,
    "authKind" "DeviceAuthKind" NOT NULL,
    "credential" TEXT NOT NULL,
    "pinnedHostKey" TEXT,
    "tags" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    "group" TEXT,
    "modelDir" TEXT NOT NULL,
    "restartCommand" TEXT NOT NULL,
    "healthCommand" TEXT NOT NULL,
    "state" "DeviceState" NOT NULL DEFAULT 'unknown',
    "lastSeenAt" TIMESTAMP(3),
    "lastCheckAt" TIMESTAMP(3),
    "lastError" TEXT,
    "facts" JSONB NOT NULL DEFAULT '{}',
    "currentSha256" TEXT,
    "currentVersionId" UUID,
    "createdById" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "Device_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "DeviceHealthSample" (
    "id" BIGSERIAL NOT NULL,
    "orgId" UUID NOT NULL,
    "deviceId" UUID NOT NULL,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "state" "DeviceState" NOT NULL,
    "load1" DOUBLE PRECISION,
    "diskFreeBytes" BIGINT,
    "serviceState" TEXT,
    "sha256" TEXT,
    "versionId" UUID,
    "latencyMs" INTEGER,
    "error" TEXT,
    CONSTRAINT "DeviceHealthSample_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "Deployment" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "modelVersionId" UUID NOT NULL,
    "kind" TEXT NOT NULL DEFAULT 'rollout',
    "strategy" JSONB NOT NULL,
    "selector" JSONB NOT NULL,
    "status" "DeploymentStatus" NOT NULL DEFAULT 'scheduled',
    "startAt" TIMESTAMP(3),
    "error" TEXT,
    "createdById" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),
    CONSTRAINT "Deployment_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "DeploymentTarget" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "deploymentId" UUID NOT NULL,
    "deviceId" UUID NOT NULL,
    "modelVersionId" UUID NOT NULL,
    "phase" INTEGER NOT NULL,
    "state" "DeploymentTargetState" NOT NULL DEFAULT 'pending',
    "step" TEXT,
    "previousTarget" TEXT,
    "previousVersionId" UUID,
    "rollback" TEXT,
    "error" TEXT,
    "log" TEXT NOT NULL DEFAULT '',
    "jobId" UUID,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    CONSTRAINT "DeploymentTarget_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "Device_orgId_name_key" ON "Device"("orgId", "name");
CREATE INDEX "DeviceHealthSample_deviceId_at_idx" ON "DeviceHealthSample"("deviceId", "at");
CREATE INDEX "Deployment_orgId_createdAt_idx" ON "Deployment"("orgId", "createdAt");
CREATE UNIQUE INDEX "DeploymentTarget_deploymentId_deviceId_key" ON "DeploymentTarget"("deploymentId", "deviceId");
CREATE INDEX "DeploymentTarget_deviceId_idx" ON "DeploymentTarget"("deviceId");

ALTER TABLE "Device" ADD CONSTRAINT "Device_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Device" ADD CONSTRAINT "Device_currentVersionId_fkey" FOREIGN KEY ("currentVersionId") REFERENCES "ModelVersion"("id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "DeviceHealthSample" ADD CONSTRAINT "DeviceHealthSample_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Deployment" ADD CONSTRAINT "Deployment_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Deployment" ADD CONSTRAINT "Deployment_modelVersionId_fkey" FOREIGN KEY ("modelVersionId") REFERENCES "ModelVersion"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "DeploymentTarget" ADD CONSTRAINT "DeploymentTarget_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "DeploymentTarget" ADD CONSTRAINT "DeploymentTarget_modelVersionId_fkey" FOREIGN KEY ("modelVersionId") REFERENCES "ModelVersion"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "DeploymentTarget" ADD CONSTRAINT "DeploymentTarget_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;
