import { describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import type { OrgActor, Role } from "../auth/roles";
import { createTokenInput } from "../auth/auth.schemas";
import { authenticateApiToken, createApiToken } from "../auth/tokens.service";
import { createOrg, listMembers, listMyOrgs, removeMember, renameOrg, resolveMembership, setMemberRole, switchOrg } from "./orgs.service";

const db = testDb();

const roleOf = async (orgId: string, userId: string): Promise<Role | undefined> =>
  (await db.membership.findUnique({ where: { orgId_userId: { orgId, userId } } }))?.role;

/** The same person's membership in another organisation, as an actor there. */
async function joinAs(person: OrgActor, orgId: string, role: Role): Promise<OrgActor> {
  await db.membership.create({ data: { orgId, userId: person.userId, role } });
  return { ...person, orgId, role };
}

describe("organisations", () => {
  it("makes the creator its owner and switches them to it", async () => {
    const { actor } = await createOrgWithMember(db, "viewer");
    const { id } = await createOrg(db, { actor, name: "Second Lab" });
    expect(await roleOf(id, actor.userId)).toBe("owner");
    expect((await db.user.findUniqueOrThrow({ where: { id: actor.userId } })).lastOrgId).toBe(id);
    expect(await resolveMembership(db, { userId: actor.userId })).toEqual({ orgId: id, role: "owner" });
    expect((await listMyOrgs(db, actor.userId)).map((o) => [o.id, o.role])).toEqual(
      expect.arrayContaining([
        [id, "owner"],
        [actor.orgId, "viewer"],
      ]),
    );
    expect(await db.auditEvent.count({ where: { orgId: id, action: "org.create", actorId: actor.userId } })).toBe(1);
  });

  it("renames, and gives two organisations of the same name different slugs", async () => {
    const { owner } = await createOrgWithMember(db);
    const a = await createOrg(db, { actor: owner, name: "Robot Lab" });
    const b = await createOrg(db, { actor: owner, name: "Robot Lab" });
    const [orgA, orgB] = await Promise.all([a, b].map(({ id }) => db.org.findUniqueOrThrow({ where: { id } })));
    expect(orgA.slug).toMatch(/^robot-lab-/);
    expect(orgA.slug).not.toBe(orgB.slug);
    await renameOrg(db, { actor: { ...owner, orgId: a.id }, name: "Arm Lab" });
    expect((await db.org.findUniqueOrThrow({ where: { id: a.id } })).name).toBe("Arm Lab");
  });

  it("switches only to an organisation the person belongs to", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { orgId: other } = await createOrgWithMember(db);
    await expect(switchOrg(db, { actor, orgId: other })).rejects.toMatchObject({ code: "FORBIDDEN" });
    expect(await resolveMembership(db, { userId: actor.userId, orgId: other })).toBeNull();
    const second = await createOrg(db, { actor, name: "Mine" });
    await switchOrg(db, { actor, orgId: actor.orgId });
    expect(await resolveMembership(db, { userId: actor.userId })).toEqual({ orgId: actor.orgId, role: "operator" });
    expect(await resolveMembership(db, { userId: actor.userId, orgId: second.id })).toEqual({ orgId: second.id, role: "owner" });
  });

  it("falls back to the earliest membership when the last organisation used is gone", async () => {
    const { actor } = await createOrgWithMember(db, "viewer");
    const later = await createOrg(db, { actor, name: "Short-lived" });
    await db.org.delete({ where: { id: later.id } });
    expect(await resolveMembership(db, { userId: actor.userId })).toEqual({ orgId: actor.orgId, role: "viewer" });
  });

  it("lists members with their roles", async () => {
    const { owner, actor } = await createOrgWithMember(db, "operator");
    const members = await listMembers(db, owner.orgId);
    expect(members.map((m) => [m.userId, m.role])).toEqual([
      [owner.userId, "owner"],
      [actor.userId, "operator"],
    ]);
  });
});

describe("member roles", () => {
  it("lets an admin manage operators and viewers", async () => {
    const { orgId, actor: admin } = await createOrgWithMember(db, "admin");
    const operator = await addMember(db, orgId, "operator");
    await setMemberRole(db, { actor: admin, userId: operator.userId, role: "viewer" });
    expect(await roleOf(orgId, operator.userId)).toBe("viewer");
    await setMemberRole(db, { actor: admin, userId: operator.userId, role: "operator" });
    expect(await roleOf(orgId, operator.userId)).toBe("operator");
  });

  it("keeps an admin's hands off admins and owners", async () => {
    const { orgId, owner, actor: admin } = await createOrgWithMember(db, "admin");
    const otherAdmin = await addMember(db, orgId, "admin");
    const operator = await addMember(db, orgId, "operator");
    const forbidden = { code: "FORBIDDEN", message: "Only an owner can change an admin's or owner's role" };
    await expect(setMemberRole(db, { actor: admin, userId: operator.userId, role: "admin" })).rejects.toMatchObject(forbidden);
    await expect(setMemberRole(db, { actor: admin, userId: operator.userId, role: "owner" })).rejects.toMatchObject(forbidden);
    await expect(setMemberRole(db, { actor: admin, userId: otherAdmin.userId, role: "viewer" })).rejects.toMatchObject(forbidden);
    await expect(setMemberRole(db, { actor: admin, userId: owner.userId, role: "viewer" })).rejects.toMatchObject(forbidden);
    await expect(removeMember(db, { actor: admin, userId: otherAdmin.userId })).rejects.toMatchObject(forbidden);
    await expect(removeMember(db, { actor: admin, userId: owner.userId })).rejects.toMatchObject(forbidden);
    expect(await roleOf(orgId, operator.userId)).toBe("operator");
    expect(await roleOf(orgId, otherAdmin.userId)).toBe("admin");
    expect(await roleOf(orgId, owner.userId)).toBe("owner");
  });

  it("lets an owner grant and take away admin and owner", async () => {
    const { orgId, owner, actor: operator } = await createOrgWithMember(db, "operator");
    await setMemberRole(db, { actor: owner, userId: operator.userId, role: "admin" });
    expect(await roleOf(orgId, operator.userId)).toBe("admin");
    await setMemberRole(db, { actor: owner, userId: operator.userId, role: "owner" });
    expect(await roleOf(orgId, operator.userId)).toBe("owner");
    await setMemberRole(db, { actor: owner, userId: operator.userId, role: "viewer" });
    expect(await roleOf(orgId, operator.userId)).toBe("viewer");
  });

  it("never demotes or removes the last owner", async () => {
    const { orgId, owner } = await createOrgWithMember(db);
    const conflict = { code: "CONFLICT", message: expect.stringContaining("at least one owner") };
    await expect(setMemberRole(db, { actor: owner, userId: owner.userId, role: "admin" })).rejects.toMatchObject(conflict);
    await expect(removeMember(db, { actor: owner, userId: owner.userId })).rejects.toMatchObject(conflict);
    expect(await roleOf(orgId, owner.userId)).toBe("owner");

    const second = await addMember(db, orgId, "owner");
    await setMemberRole(db, { actor: owner, userId: owner.userId, role: "admin" });
    expect(await roleOf(orgId, owner.userId)).toBe("admin");
    await expect(removeMember(db, { actor: second, userId: second.userId })).rejects.toMatchObject(conflict);
  });

  it("keeps one owner when two owners demote each other at the same moment", async () => {
    const { orgId, owner: a } = await createOrgWithMember(db);
    const b = await addMember(db, orgId, "owner");
    const results = await Promise.allSettled([
      setMemberRole(db, { actor: a, userId: b.userId, role: "viewer" }),
      setMemberRole(db, { actor: b, userId: a.userId, role: "viewer" }),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(results.find((r) => r.status === "rejected")).toMatchObject({ reason: { code: "CONFLICT" } });
    expect(await db.membership.count({ where: { orgId, role: "owner" } })).toBe(1);
  });

  it("records a role change once, and nothing when the role is unchanged", async () => {
    const { orgId, owner, actor: viewer } = await createOrgWithMember(db, "viewer");
    await setMemberRole(db, { actor: owner, userId: viewer.userId, role: "viewer" });
    expect(await db.auditEvent.count({ where: { orgId, action: "member.role_change" } })).toBe(0);
    await setMemberRole(db, { actor: owner, userId: viewer.userId, role: "operator" });
    expect(await db.auditEvent.findMany({ where: { orgId, action: "member.role_change" }, select: { data: true } })).toEqual([{ data: { from: "viewer", to: "operator" } }]);
  });

  it("answers NOT_FOUND for someone who is not a member", async () => {
    const { owner } = await createOrgWithMember(db);
    const { actor: stranger } = await createOrgWithMember(db, "operator");
    await expect(setMemberRole(db, { actor: owner, userId: stranger.userId, role: "viewer" })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(removeMember(db, { actor: owner, userId: stranger.userId })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await roleOf(stranger.orgId, stranger.userId)).toBe("operator");
  });
});

describe("removing a member", () => {
  it("removes them and revokes their tokens in that organisation only", async () => {
    const { orgId, actor: admin } = await createOrgWithMember(db, "admin");
    const operator = await addMember(db, orgId, "operator");
    const { orgId: otherOrgId } = await createOrgWithMember(db);
    const elsewhere = await joinAs(operator, otherOrgId, "operator");

    const input = createTokenInput.parse({ name: "arm-1 agent", scopes: ["write"] });
    const here = await createApiToken(db, { actor: operator, input });
    const there = await createApiToken(db, { actor: elsewhere, input });

    await removeMember(db, { actor: admin, userId: operator.userId });
    expect(await roleOf(orgId, operator.userId)).toBeUndefined();
    expect((await db.apiToken.findUniqueOrThrow({ where: { id: here.id } })).revokedAt).toBeInstanceOf(Date);
    await expect(authenticateApiToken(db, here.token)).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    expect(await authenticateApiToken(db, there.token)).toMatchObject({ orgId: otherOrgId, role: "operator" });
    expect(await db.auditEvent.count({ where: { orgId, action: "member.remove", actorId: admin.userId } })).toBe(1);
  });
});
