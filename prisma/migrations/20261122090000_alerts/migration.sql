-- Alerts shown in the app (and sent to an organisation's webhook when it has one).
CREATE TYPE "AlertSeverity" AS ENUM ('warning', 'critical');

CREATE TABLE "Alert" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "kind" TEXT NOT NULL,
    "severity" "AlertSeverity" NOT NULL,
    "title" TEXT NOT NULL,
    "message" TEXT NOT NULL,
    "target" TEXT,
    "webhookStatus" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "acknowledgedAt" TIMESTAMP(3),
    "acknowledgedById" UUID,
    CONSTRAINT "Alert_pkey" PRIMARY KEY ("id")
);

-- One row per organisation that has alert settings.
CREATE TABLE "AlertSettings" (
    "orgId" UUID NOT NULL,
    "webhookUrl" TEXT,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "AlertSettings_pkey" PRIMARY KEY ("orgId")
);

CREATE INDEX "Alert_orgId_createdAt_idx" ON "Alert"("orgId", "createdAt");

ALTER TABLE "Alert" ADD CONSTRAINT "Alert_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "AlertSettings" ADD CONSTRAINT "AlertSettings_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
