import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import { recordAudit } from "../audit/audit.service";
import { hasRole, type Actor, type OrgActor, type Role } from "../auth/roles";
import { endSessionsOf } from "../auth/sessions.service";
import type { memberSchema, orgSummarySchema } from "./orgs.schemas";

function slugify(name: string): string {
  const base = name.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "org";
  return `${base}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function createOrgInTx(tx: Tx, { name, ownerId }: { name: string; ownerId: string }): Promise<{ id: string }> {
  const org = await tx.org.create({ data: { name, slug: slugify(name), memberships: { create: { userId: ownerId, role: "owner" } } } });
  return { id: org.id };
}

export async function createOrg(db: Db, { actor, name }: { actor: Actor; name: string }): Promise<{ id: string }> {
  return db.$transaction(async (tx) => {
    const org = await createOrgInTx(tx, { name, ownerId: actor.userId });
    await tx.user.update({ where: { id: actor.userId }, data: { lastOrgId: org.id } });
    await recordAudit(tx, { orgId: org.id, actor, action: "org.create", target: name });
    return org;
  });
}

export async function renameOrg(db: Db, { actor, name }: { actor: OrgActor; name: string }): Promise<void> {
  await db.$transaction(async (tx) => {
    await tx.org.update({ where: { id: actor.orgId }, data: { name } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "org.rename", target: name });
  });
}

export async function listMyOrgs(db: Db, userId: string): Promise<z.infer<typeof orgSummarySchema>[]> {
  const rows = await db.membership.findMany({ where: { userId }, include: { org: true }, orderBy: { org: { name: "asc" } } });
  return rows.map((m) => ({ id: m.org.id, name: m.org.name, slug: m.org.slug, role: m.role }));
}

/** The organisation a user acts in: the one asked for, else the last one used, else the first. */
export async function resolveMembership(db: Db, { userId, orgId }: { userId: string; orgId?: string | null }): Promise<{ orgId: string; role: Role } | null> {
  if (orgId) {
    const m = await db.membership.findUnique({ where: { orgId_userId: { orgId, userId } } });
    return m ? { orgId: m.orgId, role: m.role } : null;
  }
  const user = await db.user.findUnique({ where: { id: userId }, select: { lastOrgId: true } });
  const m =
    (user?.lastOrgId && (await db.membership.findUnique({ where: { orgId_userId: { orgId: user.lastOrgId, userId } } }))) ||
    (await db.membership.findFirst({ where: { userId }, orderBy: { createdAt: "asc" } }));
  return m ? { orgId: m.orgId, role: m.role } : null;
}

export async function switchOrg(db: Db, { actor, orgId }: { actor: Actor; orgId: string }): Promise<void> {
  const m = await db.membership.findUnique({ where: { orgId_userId: { orgId, userId: actor.userId } } });
  if (!m) throw new AppError("FORBIDDEN", "You are not a member of that organisation");
  await db.user.update({ where: { id: actor.userId }, data: { lastOrgId: orgId } });
}

export async function listMembers(db: Db, orgId: string): Promise<z.infer<typeof memberSchema>[]> {
  const rows = await db.membership.findMany({ where: { orgId }, include: { user: true }, orderBy: { createdAt: "asc" } });
  return rows.map((m) => ({ userId: m.userId, name: m.user.name, email: m.user.email, role: m.role, joinedAt: m.createdAt }));
}

/**
 * Admins manage operators and viewers; only owners grant or take away admin and owner, and
 * the last owner cannot be demoted or removed.
 */
async function checkCanManage(tx: Tx, actor: OrgActor, userId: string, newRole?: Role) {
  const target = await tx.membership.findUnique({ where: { orgId_userId: { orgId: actor.orgId, userId } }, include: { user: true } });
  if (!target) throw new AppError("NOT_FOUND", "That person is not a member of this organisation");
  const touchesAdmins = hasRole(target.role, "admin") || (newRole !== undefined && hasRole(newRole, "admin"));
  if (touchesAdmins && actor.role !== "owner") throw new AppError("FORBIDDEN", "Only an owner can change an admin's or owner's role");
  if (target.role === "owner" && newRole !== "owner") {
    const owners = await tx.membership.count({ where: { orgId: actor.orgId, role: "owner" } });
    if (owners <= 1) throw new AppError("CONFLICT", "An organisation needs at least one owner: make someone else owner first");
  }
  return target;
}

export async function setMemberRole(db: Db, { actor, userId, role }: { actor: OrgActor; userId: string; role: Role }): Promise<void> {
  await db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT 1 FROM "Membership" WHERE "orgId" = ${actor.orgId}::uuid FOR UPDATE`;
    const target = await checkCanManage(tx, actor, userId, role);
    if (target.role === role) return;
    await tx.membership.update({ where: { id: target.id }, data: { role } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "member.role_change", target: target.user.email, data: { from: target.role, to: role } });
  });
}

export async function removeMember(db: Db, { actor, userId }: { actor: OrgActor; userId: string }): Promise<void> {
  await db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT 1 FROM "Membership" WHERE "orgId" = ${actor.orgId}::uuid FOR UPDATE`;
    const target = await checkCanManage(tx, actor, userId);
    await tx.membership.delete({ where: { id: target.id } });
    // Their tokens in this organisation stop working with them, and their browsers are signed
    // out (a page left open here must not keep showing it); open streams end at once.
    await tx.apiToken.updateMany({ where: { orgId: actor.orgId, userId, revokedAt: null }, data: { revokedAt: new Date() } });
    await endSessionsOf(tx, { userId });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "member.remove", target: target.user.email, data: { role: target.role } });
  });
}
