import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { signUp } from "../auth/accounts.service";
import { signUpInput, createTokenInput } from "../auth/auth.schemas";
import { authenticateApiToken, createApiToken, revokeApiToken } from "../auth/tokens.service";
import { createInvite } from "../orgs/invites.service";
import { setMemberRole } from "../orgs/orgs.service";
import { listAuditInput } from "./audit.schemas";
import { listAudit } from "./audit.service";

const db = testDb();
const unique = () => crypto.randomBytes(5).toString("hex");

const list = (orgId: string, input: Partial<{ action: string; actor: string; limit: number; before: string }> = {}) =>
  listAudit(db, { orgId, input: listAuditInput.parse(input) });

describe("audit log", () => {
  it("records a sign-up in the new account's organisation", async () => {
    const email = `audit-${unique()}@example.test`;
    const user = await signUp(db, { input: signUpInput.parse({ email, name: "Audit Person", password: "long enough password" }), allowSignup: true });
    const { orgId } = await db.membership.findFirstOrThrow({ where: { userId: user.id } });
    const { items } = await list(orgId, { action: "auth." });
    expect(items).toMatchObject([{ action: "auth.sign_up", actor: "Audit Person", target: email }]);
  });

  it("records invites created and accepted, and the sign-up that accepted one", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const invite = await createInvite(db, { actor: owner, role: "viewer", expiresInDays: 2, baseUrl: "http://gantry.test" });
    const name = `Invitee ${unique()}`;
    const email = `invitee-${unique()}@example.test`;
    await signUp(db, { input: signUpInput.parse({ email, name, password: "long enough password", inviteToken: invite.url.split("/invite/")[1] }), allowSignup: false });

    const { items } = await list(orgId);
    expect(items.map((e) => [e.action, e.actor, e.target])).toEqual([
      ["auth.sign_up", name, email],
      ["invite.accept", name, invite.id],
      ["invite.create", owner.label, invite.id],
    ]);
    expect(items[2].data).toMatchObject({ role: "viewer", expiresAt: invite.expiresAt.toISOString() });
    expect(items[1].data).toEqual({ role: "viewer" });
  });

  it("records role changes with the roles before and after", async () => {
    const { owner, orgId, actor } = await createOrgWithMember(db, "viewer");
    const email = (await db.user.findUniqueOrThrow({ where: { id: actor.userId } })).email;
    await setMemberRole(db, { actor: owner, userId: actor.userId, role: "admin" });
    const { items } = await list(orgId, { action: "member." });
    expect(items).toMatchObject([{ action: "member.role_change", actor: owner.label, target: email, data: { from: "viewer", to: "admin" } }]);
  });

  it("records tokens created and revoked, marking what was done through a token", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const agentToken = await createApiToken(db, { actor: owner, input: createTokenInput.parse({ name: "deploy bot", scopes: ["admin"] }) });
    const spare = await createApiToken(db, { actor: owner, input: createTokenInput.parse({ name: "spare", scopes: ["read"] }) });
    const viaToken = await authenticateApiToken(db, agentToken.token);
    await revokeApiToken(db, { actor: viaToken, tokenId: spare.id });

    const { items } = await list(orgId, { action: "token." });
    expect(items.map((e) => [e.action, e.actor, e.target])).toEqual([
      ["token.revoke", `${owner.label} (API token)`, "spare"],
      ["token.create", owner.label, "spare"],
      ["token.create", owner.label, "deploy bot"],
    ]);
    expect(items[2].data).toEqual({ tokenId: agentToken.id, prefix: agentToken.token.slice(4, 12), scopes: ["admin"] });
    expect(JSON.stringify(items)).not.toContain(agentToken.token);
  });

  it("filters by action prefix and by actor, case-insensitively", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const admin = await addMember(db, orgId, "admin");
    const viewer = await addMember(db, orgId, "viewer");
    await setMemberRole(db, { actor: admin, userId: viewer.userId, role: "operator" });
    await createInvite(db, { actor: owner, role: "operator", expiresInDays: 1, baseUrl: "http://gantry.test" });
    await createInvite(db, { actor: admin, role: "viewer", expiresInDays: 1, baseUrl: "http://gantry.test" });

    expect((await list(orgId, { action: "invite." })).items.map((e) => e.actor)).toEqual([admin.label, owner.label]);
    expect((await list(orgId, { action: "invite.create" })).items).toHaveLength(2);
    expect((await list(orgId, { action: "token." })).items).toEqual([]);
    expect((await list(orgId, { actor: admin.label.toUpperCase() })).items.map((e) => e.action)).toEqual(["invite.create", "member.role_change"]);
    expect((await list(orgId, { actor: owner.label, action: "member." })).items).toEqual([]);
  });

  it("shows an organisation only its own events, newest first, a page at a time", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const { owner: otherOwner, orgId: otherOrgId } = await createOrgWithMember(db);
    for (let i = 0; i < 5; i++) await createInvite(db, { actor: owner, role: "viewer", expiresInDays: 1, baseUrl: "http://gantry.test" });
    await createInvite(db, { actor: otherOwner, role: "viewer", expiresInDays: 1, baseUrl: "http://gantry.test" });

    const seen: string[] = [];
    let before: string | undefined;
    for (let page = 0; page < 5; page++) {
      const { items, nextBefore } = await list(orgId, { limit: 2, ...(before ? { before } : {}) });
      seen.push(...items.map((e) => e.id));
      if (!nextBefore) break;
      before = nextBefore;
    }
    expect(seen).toHaveLength(5);
    expect(seen.map(BigInt)).toEqual([...seen.map(BigInt)].sort((a, b) => (a > b ? -1 : 1)));
    expect((await list(otherOrgId)).items).toHaveLength(1);
  });
});
