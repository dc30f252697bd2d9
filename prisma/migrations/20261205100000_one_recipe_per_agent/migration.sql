-- One set-up recipe at a time on an agent's computer: two installs at once would fight over the
-- same folder and package caches. Enforced here rather than in a web process, so requests that
-- reach different web processes at the same moment cannot both start one.
CREATE UNIQUE INDEX "AgentCommand_agentId_recipe_active_key" ON "AgentCommand"("agentId") WHERE "kind" = 'recipe.run' AND "status" IN ('queued', 'sent', 'running');
