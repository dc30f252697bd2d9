import type { z } from "zod";
import type { Db } from "../db";
import type { gettingStartedSchema } from "./system.schemas";

/**
 * What the organisation has of each thing a newcomer sets up first, for the Overview's
 * checklist. An agent counts as connected once one of the organisation's tokens has been used
 * (`gantry-agent login` checks its token with the portal) or an episode came from the edge.
 */
export async function getGettingStarted(db: Db, { orgId }: { orgId: string }): Promise<z.infer<typeof gettingStartedSchema>> {
  const [tokens, usedTokens, edgeEpisodes, datasets, models, endpoints, devices] = await Promise.all([
    db.apiToken.count({ where: { orgId, revokedAt: null } }),
    db.apiToken.count({ where: { orgId, lastUsedAt: { not: null } } }),
    db.episode.count({ where: { orgId, mode: { not: "import" } } }),
    db.dataset.count({ where: { orgId } }),
    db.model.count({ where: { orgId } }),
    db.endpoint.count({ where: { orgId } }),
    db.device.count({ where: { orgId } }),
  ]);
  return { tokens, agentsConnected: usedTokens + edgeEpisodes, datasets, models, endpoints, devices };
}
