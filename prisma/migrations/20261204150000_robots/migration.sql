-- Arms set up through an agent, and their calibration history.
ALTER TABLE "AgentCommand" ADD COLUMN "cancelSentAt" TIMESTAMP(3);

CREATE TABLE "Robot" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "agentId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "protocol" TEXT NOT NULL,
    "port" TEXT,
    "motors" JSONB NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "Robot_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "Robot_orgId_name_key" ON "Robot"("orgId", "name");
CREATE INDEX "Robot_agentId_idx" ON "Robot"("agentId");
ALTER TABLE "Robot" ADD CONSTRAINT "Robot_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Robot" ADD CONSTRAINT "Robot_agentId_fkey" FOREIGN KEY ("agentId") REFERENCES "Agent"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "RobotCalibration" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "robotId" UUID NOT NULL,
    "calibration" JSONB NOT NULL,
    "source" TEXT NOT NULL,
    "note" TEXT,
    "createdById" UUID,
    "createdBy" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "RobotCalibration_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "RobotCalibration_robotId_createdAt_idx" ON "RobotCalibration"("robotId", "createdAt");
ALTER TABLE "RobotCalibration" ADD CONSTRAINT "RobotCalibration_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "RobotCalibration" ADD CONSTRAINT "RobotCalibration_robotId_fkey" FOREIGN KEY ("robotId") REFERENCES "Robot"("id") ON DELETE CASCADE ON UPDATE CASCADE;
