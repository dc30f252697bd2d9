import { describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { authenticateApiToken, createApiToken, revokeApiToken } from "../auth/tokens.service";
import { createModel } from "../models/registry.service";
import { getGettingStarted } from "./getting-started.service";

const db = testDb();

describe("getting started", () => {
  it("counts what one organisation has set up, not another's", async () => {
    const { actor } = await createOrgWithMember(db, "admin");
    const other = await createOrgWithMember(db, "admin");
    await createApiToken(db, { actor: other.actor, input: { name: "elsewhere", scopes: ["read"] } });
    expect(await getGettingStarted(db, { orgId: actor.orgId })).toEqual({ tokens: 0, agentsConnected: 0, datasets: 0, models: 0, endpoints: 0, devices: 0 });

    const { token, id } = await createApiToken(db, { actor, input: { name: "lab agent", scopes: ["write"] } });
    expect(await getGettingStarted(db, { orgId: actor.orgId })).toMatchObject({ tokens: 1, agentsConnected: 0 });
    // What `gantry-agent login` does: its first call with the token marks the token used.
    await authenticateApiToken(db, token);
    expect(await getGettingStarted(db, { orgId: actor.orgId })).toMatchObject({ tokens: 1, agentsConnected: 1 });
    await revokeApiToken(db, { actor, tokenId: id });
    expect(await getGettingStarted(db, { orgId: actor.orgId })).toMatchObject({ tokens: 0, agentsConnected: 1 });

    const dataset = await db.dataset.create({ data: { orgId: actor.orgId, repoId: `lab/first-${actor.orgId.slice(0, 8)}` } });
    await db.episode.create({ data: { orgId: actor.orgId, datasetId: dataset.id, number: 0, mode: "edge", status: "ready", task: "pick" } });
    await createModel(db, { actor, input: { name: "First policy", description: "" } });
    await db.device.create({ data: { orgId: actor.orgId, name: "arm-1", host: "192.0.2.1", username: "robot", authKind: "password", credential: "v1:", modelDir: "/opt/gantry", restartCommand: "true", healthCommand: "true" } });
    expect(await getGettingStarted(db, { orgId: actor.orgId })).toEqual({ tokens: 0, agentsConnected: 2, datasets: 1, models: 1, endpoints: 0, devices: 1 });
  });
});
