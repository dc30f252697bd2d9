-- Agents that dial out to the portal and the commands the portal sends them. Presence lives in
-- these rows (not in a web process's memory) so every web process agrees on who is online.
CREATE TYPE "AgentCommandStatus" AS ENUM ('queued', 'sent', 'running', 'succeeded', 'failed', 'cancelled');

CREATE TABLE "Agent" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "tokenId" UUID,
    "version" TEXT,
    "hostFacts" JSONB,
    "factsAt" TIMESTAMP(3),
    "connectionId" UUID,
    "connectedAt" TIMESTAMP(3),
    "disconnectedAt" TIMESTAMP(3),
    "lastSeenAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Agent_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "Agent_orgId_name_key" ON "Agent"("orgId", "name");
ALTER TABLE "Agent" ADD CONSTRAINT "Agent_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Agent" ADD CONSTRAINT "Agent_tokenId_fkey" FOREIGN KEY ("tokenId") REFERENCES "ApiToken"("id") ON DELETE SET NULL ON UPDATE CASCADE;

CREATE TABLE "AgentCommand" (
    "id" UUID NOT NULL,
    "orgId" UUID NOT NULL,
    "agentId" UUID NOT NULL,
    "kind" TEXT NOT NULL,
    "input" JSONB NOT NULL,
    "status" "AgentCommandStatus" NOT NULL DEFAULT 'queued',
    "progress" DOUBLE PRECISION,
    "step" TEXT,
    "result" JSONB,
    "error" TEXT,
    "deadline" TIMESTAMP(3) NOT NULL,
    "connectionId" UUID,
    "createdById" UUID,
    "createdBy" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sentAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    CONSTRAINT "AgentCommand_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "AgentCommand_agentId_createdAt_idx" ON "AgentCommand"("agentId", "createdAt");
CREATE INDEX "AgentCommand_agentId_status_idx" ON "AgentCommand"("agentId", "status");
ALTER TABLE "AgentCommand" ADD CONSTRAINT "AgentCommand_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "AgentCommand" ADD CONSTRAINT "AgentCommand_agentId_fkey" FOREIGN KEY ("agentId") REFERENCES "Agent"("id") ON DELETE CASCADE ON UPDATE CASCADE;
