import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import type { Actor, OrgActor, Role } from "../auth/roles";
import { acceptInvite, createInvite, describeInvite, listInvites, revokeInvite } from "./invites.service";

const db = testDb();
const unique = () => crypto.randomBytes(5).toString("hex");

/** Someone with an account but no place in the organisation being tested. */
async function outsider(): Promise<Actor> {
  const name = `Outsider ${unique()}`;
  const user = await db.user.create({ data: { email: `outsider-${unique()}@example.test`, name } });
  return { userId: user.id, label: name };
}

async function invite(actor: OrgActor, role: Role = "operator", expiresInDays = 7) {
  const created = await createInvite(db, { actor, role, expiresInDays, baseUrl: "https://gantry.example.test/" });
  return { ...created, token: created.url.split("/invite/")[1] };
}

describe("invites", () => {
  it("makes a link that is shown once and stored only as a hash", async () => {
    const { owner } = await createOrgWithMember(db);
    const created = await invite(owner, "viewer", 3);
    expect(created.url).toMatch(/^https:\/\/gantry\.example\.test\/invite\/[A-Za-z0-9_-]{32}$/);
    const row = await db.invite.findUniqueOrThrow({ where: { id: created.id } });
    expect(JSON.stringify(row)).not.toContain(created.token);
    expect(row.tokenHash).toBe(crypto.createHash("sha256").update(created.token).digest("hex"));
    expect(created.expiresAt.getTime() - Date.now()).toBeGreaterThan(3 * 86_400_000 - 60_000);
  });

  it("describes the invite to someone not yet signed in", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const created = await invite(owner, "viewer");
    const org = await db.org.findUniqueOrThrow({ where: { id: orgId } });
    expect(await describeInvite(db, created.token)).toEqual({ orgName: org.name, role: "viewer", expiresAt: created.expiresAt });
  });

  it("adds the person who accepts with the invite's role and switches them to that organisation", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const created = await invite(owner, "operator");
    const person = await outsider();
    expect(await acceptInvite(db, { token: created.token, actor: person })).toMatchObject({ orgId });
    expect(await db.membership.findUniqueOrThrow({ where: { orgId_userId: { orgId, userId: person.userId } } })).toMatchObject({ role: "operator" });
    expect((await db.user.findUniqueOrThrow({ where: { id: person.userId } })).lastOrgId).toBe(orgId);
    expect(await db.invite.findUniqueOrThrow({ where: { id: created.id } })).toMatchObject({ acceptedById: person.userId, acceptedAt: expect.any(Date) });
  });

  it("can be used once", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const created = await invite(owner);
    await acceptInvite(db, { token: created.token, actor: await outsider() });
    const second = await outsider();
    await expect(acceptInvite(db, { token: created.token, actor: second })).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringContaining("already been used") });
    await expect(describeInvite(db, created.token)).rejects.toMatchObject({ code: "CONFLICT" });
    expect(await db.membership.findUnique({ where: { orgId_userId: { orgId, userId: second.userId } } })).toBeNull();
  });

  it("lets only one of two people accepting at the same moment in", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const created = await invite(owner);
    const people = await Promise.all([outsider(), outsider(), outsider()]);
    const results = await Promise.allSettled(people.map((actor) => acceptInvite(db, { token: created.token, actor })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((r) => r.status === "rejected")) expect(r.reason).toMatchObject({ code: "CONFLICT" });
    expect(await db.membership.count({ where: { orgId, userId: { in: people.map((p) => p.userId) } } })).toBe(1);
  });

  it("refuses an expired link", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const created = await invite(owner);
    await db.invite.update({ where: { id: created.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const person = await outsider();
    await expect(describeInvite(db, created.token)).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringContaining("expired") });
    await expect(acceptInvite(db, { token: created.token, actor: person })).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringContaining("expired") });
    expect(await db.membership.findUnique({ where: { orgId_userId: { orgId, userId: person.userId } } })).toBeNull();
    expect(await listInvites(db, orgId)).toEqual([]);
  });

  it("refuses a revoked link, and revokes only open invites of the actor's organisation", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const { owner: stranger } = await createOrgWithMember(db);
    const created = await invite(owner);
    await expect(revokeInvite(db, { actor: stranger, inviteId: created.id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await revokeInvite(db, { actor: owner, inviteId: created.id });
    await expect(revokeInvite(db, { actor: owner, inviteId: created.id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    const person = await outsider();
    await expect(acceptInvite(db, { token: created.token, actor: person })).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("not valid") });
    expect(await db.membership.findUnique({ where: { orgId_userId: { orgId, userId: person.userId } } })).toBeNull();

    const accepted = await invite(owner);
    await acceptInvite(db, { token: accepted.token, actor: await outsider() });
    await expect(revokeInvite(db, { actor: owner, inviteId: accepted.id })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("refuses a link that was never issued", async () => {
    await expect(describeInvite(db, "made-up-token-of-some-length")).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(acceptInvite(db, { token: "made-up-token-of-some-length", actor: await outsider() })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("leaves the invite open when a member follows it by mistake", async () => {
    const { owner, actor: member } = await createOrgWithMember(db, "viewer");
    const created = await invite(owner, "admin");
    await expect(acceptInvite(db, { token: created.token, actor: member })).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringContaining("already a member") });
    expect(await db.membership.findUniqueOrThrow({ where: { orgId_userId: { orgId: member.orgId, userId: member.userId } } })).toMatchObject({ role: "viewer" });
    await acceptInvite(db, { token: created.token, actor: await outsider() });
  });

  it("lists only open invites", async () => {
    const { owner, orgId } = await createOrgWithMember(db);
    const open = await invite(owner, "viewer");
    const revoked = await invite(owner);
    const used = await invite(owner);
    await revokeInvite(db, { actor: owner, inviteId: revoked.id });
    await acceptInvite(db, { token: used.token, actor: await outsider() });
    expect((await listInvites(db, orgId)).map((i) => i.id)).toEqual([open.id]);
  });

  it("lets only an owner invite an admin", async () => {
    const { owner, actor: admin } = await createOrgWithMember(db, "admin");
    await expect(invite(admin, "admin")).rejects.toMatchObject({ code: "FORBIDDEN" });
    await expect(invite(admin, "operator")).resolves.toMatchObject({ id: expect.any(String) });
    await expect(invite(owner, "admin")).resolves.toMatchObject({ id: expect.any(String) });
  });
});
