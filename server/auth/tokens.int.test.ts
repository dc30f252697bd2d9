import { describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { setMemberRole } from "../orgs/orgs.service";
import { createTokenInput } from "./auth.schemas";
import type { OrgActor, Role } from "./roles";
import { authenticateApiToken, createApiToken, listApiTokens, revokeApiToken } from "./tokens.service";

const db = testDb();

function makeToken(actor: OrgActor, scopes: string[] = ["write"], extra: { name?: string; expiresInDays?: number } = {}) {
  return createApiToken(db, { actor, input: createTokenInput.parse({ name: extra.name ?? "arm-1 agent", scopes, expiresInDays: extra.expiresInDays }) });
}

describe("API tokens", () => {
  it("shows the token once and stores only its hash", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { id, token } = await makeToken(actor);
    expect(token).toMatch(/^gty_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
    const secret = token.split("_").slice(2).join("_");
    const [{ row }] = await db.$queryRaw<{ row: string }[]>`SELECT row_to_json(t)::text AS row FROM "ApiToken" t WHERE id = ${id}::uuid`;
    expect(row).not.toContain(token);
    expect(row).not.toContain(secret);
    expect(row).toContain(token.slice(4, 12));

    const listed = await listApiTokens(db, actor);
    expect(listed.map((t) => t.id)).toEqual([id]);
    expect(JSON.stringify(listed)).not.toContain(secret);
    const audit = await db.auditEvent.findMany({ where: { orgId: actor.orgId, action: "token.create" } });
    expect(JSON.stringify(audit, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v))).not.toContain(secret);
  });

  // A token is made within its maker's role; a role lowered later lowers what the token can do.
  it.each<[Role, string[], Role]>([
    ["owner", ["read"], "viewer"],
    ["owner", ["write"], "operator"],
    ["owner", ["admin"], "admin"],
    ["owner", ["read", "admin"], "admin"],
    ["admin", ["write"], "operator"],
    ["operator", ["admin"], "operator"],
    ["viewer", ["write"], "viewer"],
    ["viewer", ["read", "write", "admin"], "viewer"],
  ])("authenticates a %s's token with scopes %j as %s", async (membershipRole, scopes, expected) => {
    const { actor } = await createOrgWithMember(db, "owner");
    const { id, token } = await makeToken(actor, scopes);
    await db.membership.update({ where: { orgId_userId: { orgId: actor.orgId, userId: actor.userId } }, data: { role: membershipRole } });
    expect(await authenticateApiToken(db, token)).toEqual({ userId: actor.userId, label: actor.label, tokenId: id, orgId: actor.orgId, role: expected });
  });

  it.each<[Role, string[], RegExp]>([
    ["viewer", ["write"], /write needs the operator role, and you are a viewer here\. Choose read$/],
    ["viewer", ["read", "admin"], /admin needs the admin role, and you are a viewer here/],
    ["operator", ["admin"], /admin needs the admin role, and you are an operator here\. Choose read or write$/],
  ])("refuses a %s a token with scopes %j, above their role", async (role, scopes, message) => {
    const { actor } = await createOrgWithMember(db, role);
    await expect(makeToken(actor, scopes)).rejects.toMatchObject({ code: "FORBIDDEN", message: expect.stringMatching(message) });
    expect(await db.apiToken.count({ where: { orgId: actor.orgId } })).toBe(0);
  });

  it("lets each role make tokens up to its own rights", async () => {
    const { orgId, actor: admin } = await createOrgWithMember(db, "admin");
    const operator = await addMember(db, orgId, "operator");
    const viewer = await addMember(db, orgId, "viewer");
    await expect(makeToken(admin, ["read", "write", "admin"])).resolves.toMatchObject({ token: expect.any(String) });
    await expect(makeToken(operator, ["read", "write"])).resolves.toMatchObject({ token: expect.any(String) });
    await expect(makeToken(viewer, ["read"])).resolves.toMatchObject({ token: expect.any(String) });
  });

  it("follows the member's role down when it is lowered", async () => {
    const { owner, actor: admin } = await createOrgWithMember(db, "admin");
    const { token } = await makeToken(admin, ["admin"]);
    expect((await authenticateApiToken(db, token)).role).toBe("admin");
    await setMemberRole(db, { actor: owner, userId: admin.userId, role: "viewer" });
    expect((await authenticateApiToken(db, token)).role).toBe("viewer");
  });

  it.each([
    ["empty", ""],
    ["without the prefix", "not-a-gantry-token"],
    ["with a short secret", "gty_0123abcd_tooshort"],
    ["with a Bearer label left on", `Bearer gty_0123abcd_${"A".repeat(43)}`],
  ])("refuses a malformed token (%s)", async (_, bearer) => {
    await expect(authenticateApiToken(db, bearer)).rejects.toMatchObject({ code: "UNAUTHORIZED", message: expect.stringContaining("malformed") });
  });

  it("refuses a well-formed token that was never issued", async () => {
    await expect(authenticateApiToken(db, `gty_0123abcd_${"A".repeat(43)}`)).rejects.toMatchObject({ code: "UNAUTHORIZED" });
  });

  it("refuses a revoked token", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { id, token } = await makeToken(actor);
    await revokeApiToken(db, { actor, tokenId: id });
    await expect(authenticateApiToken(db, token)).rejects.toMatchObject({ code: "UNAUTHORIZED", message: expect.stringContaining("revoked") });
  });

  it("refuses an expired token, saying when it expired", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { id, token } = await makeToken(actor, ["read"], { name: "old agent", expiresInDays: 30 });
    const row = await db.apiToken.findUniqueOrThrow({ where: { id } });
    expect(row.expiresAt!.getTime() - Date.now()).toBeGreaterThan(29 * 86_400_000);
    await db.apiToken.update({ where: { id }, data: { expiresAt: new Date("2024-03-01T12:00:00Z") } });
    await expect(authenticateApiToken(db, token)).rejects.toMatchObject({ code: "UNAUTHORIZED", message: 'API token "old agent" expired on 2024-03-01' });
  });

  it("cannot be used to make more tokens", async () => {
    const { actor } = await createOrgWithMember(db, "owner");
    const { token } = await makeToken(actor, ["admin"]);
    const viaToken = await authenticateApiToken(db, token);
    await expect(makeToken(viaToken, ["admin"])).rejects.toMatchObject({ code: "FORBIDDEN" });
    expect(await db.apiToken.count({ where: { orgId: actor.orgId } })).toBe(1);
  });

  it("records when it was last used, at most once a minute", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { id, token } = await makeToken(actor);
    expect((await db.apiToken.findUniqueOrThrow({ where: { id } })).lastUsedAt).toBeNull();
    await authenticateApiToken(db, token);
    const first = (await db.apiToken.findUniqueOrThrow({ where: { id } })).lastUsedAt;
    expect(first).toBeInstanceOf(Date);
    await authenticateApiToken(db, token);
    expect((await db.apiToken.findUniqueOrThrow({ where: { id } })).lastUsedAt).toEqual(first);

    const longAgo = new Date(Date.now() - 5 * 60_000);
    await db.apiToken.update({ where: { id }, data: { lastUsedAt: longAgo } });
    await authenticateApiToken(db, token);
    expect((await db.apiToken.findUniqueOrThrow({ where: { id } })).lastUsedAt!.getTime()).toBeGreaterThan(longAgo.getTime());
  });

  it("shows admins every token of the organisation and others their own", async () => {
    const { orgId, actor: admin } = await createOrgWithMember(db, "admin");
    const operator = await addMember(db, orgId, "operator");
    const mine = await makeToken(admin);
    const theirs = await makeToken(operator);
    expect((await listApiTokens(db, admin)).map((t) => t.id).sort()).toEqual([mine.id, theirs.id].sort());
    expect((await listApiTokens(db, operator)).map((t) => t.id)).toEqual([theirs.id]);
  });

  it("is revoked by its owner or an admin, not by another member or another organisation", async () => {
    const { orgId, actor: admin } = await createOrgWithMember(db, "admin");
    const operator = await addMember(db, orgId, "operator");
    const colleague = await addMember(db, orgId, "operator");
    const { owner: stranger } = await createOrgWithMember(db);
    const first = await makeToken(operator);
    const second = await makeToken(operator);

    await expect(revokeApiToken(db, { actor: colleague, tokenId: first.id })).rejects.toMatchObject({ code: "FORBIDDEN" });
    await expect(revokeApiToken(db, { actor: stranger, tokenId: first.id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect((await authenticateApiToken(db, first.token)).userId).toBe(operator.userId);

    await revokeApiToken(db, { actor: operator, tokenId: first.id });
    await revokeApiToken(db, { actor: admin, tokenId: second.id });
    // Revoking again changes nothing and records nothing more.
    await revokeApiToken(db, { actor: admin, tokenId: second.id });
    expect(await db.auditEvent.count({ where: { orgId, action: "token.revoke" } })).toBe(2);
  });
});
