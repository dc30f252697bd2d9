-- The log of a recipe an agent runs, line by line as it arrives.
ALTER TABLE "AgentCommand" ADD COLUMN "log" TEXT NOT NULL DEFAULT '';
