import crypto from "node:crypto";
import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import { recordAudit } from "../audit/audit.service";
import { hasRole, type Actor, type OrgActor, type Role } from "../auth/roles";
import type { inviteSchema } from "./orgs.schemas";

const hashToken = (token: string) => crypto.createHash("sha256").update(token).digest("hex");

/** Creates an invite link; the token is returned once and stored hashed. */
export async function createInvite(db: Db, { actor, role, expiresInDays, baseUrl }: { actor: OrgActor; role: Role; expiresInDays: number; baseUrl: string }): Promise<{ id: string; url: string; expiresAt: Date }> {
  if (role === "owner") throw new AppError("BAD_REQUEST", "Invites cannot make owners; invite as admin, then make them owner from the members list");
  // The same rule as changing a role: only owners grant admin.
  if (hasRole(role, "admin") && actor.role !== "owner") throw new AppError("FORBIDDEN", "Only an owner can invite an admin; invite them as an operator, and an owner can promote them later");
  const token = crypto.randomBytes(24).toString("base64url");
  const expiresAt = new Date(Date.now() + expiresInDays * 86_400_000);
  return db.$transaction(async (tx) => {
    const invite = await tx.invite.create({ data: { orgId: actor.orgId, role, tokenHash: hashToken(token), createdById: actor.userId, expiresAt } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "invite.create", target: invite.id, data: { role, expiresAt: expiresAt.toISOString() } });
    return { id: invite.id, url: `${baseUrl.replace(/\/$/, "")}/invite/${token}`, expiresAt };
  });
}

export async function listInvites(db: Db, orgId: string): Promise<z.infer<typeof inviteSchema>[]> {
  return db.invite.findMany({
    where: { orgId, acceptedAt: null, revokedAt: null, expiresAt: { gt: new Date() } },
    orderBy: { createdAt: "desc" },
    select: { id: true, role: true, createdAt: true, expiresAt: true, acceptedAt: true, revokedAt: true },
  });
}

export async function revokeInvite(db: Db, { actor, inviteId }: { actor: OrgActor; inviteId: string }): Promise<void> {
  await db.$transaction(async (tx) => {
    const { count } = await tx.invite.updateMany({ where: { id: inviteId, orgId: actor.orgId, revokedAt: null, acceptedAt: null }, data: { revokedAt: new Date() } });
    if (count === 0) throw new AppError("NOT_FOUND", "No open invite with that id in this organisation");
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "invite.revoke", target: inviteId });
  });
}

async function findOpenInvite(tx: Tx, token: string) {
  const invite = await tx.invite.findUnique({ where: { tokenHash: hashToken(token) }, include: { org: true } });
  if (!invite || invite.revokedAt) throw new AppError("NOT_FOUND", "This invite link is not valid; ask for a new one");
  if (invite.acceptedAt) throw new AppError("CONFLICT", "This invite link has already been used; ask for a new one");
  if (invite.expiresAt < new Date()) throw new AppError("CONFLICT", "This invite link has expired; ask for a new one");
  return invite;
}

/** What the invite page shows before anyone signs in. */
export async function describeInvite(db: Db, token: string): Promise<{ orgName: string; role: Role; expiresAt: Date }> {
  const invite = await findOpenInvite(db, token);
  return { orgName: invite.org.name, role: invite.role, expiresAt: invite.expiresAt };
}

export async function acceptInviteInTx(tx: Tx, { token, actor }: { token: string; actor: Actor }): Promise<{ orgId: string; role: Role }> {
  const invite = await findOpenInvite(tx, token);
  const { count } = await tx.invite.updateMany({ where: { id: invite.id, acceptedAt: null }, data: { acceptedAt: new Date(), acceptedById: actor.userId } });
  if (count === 0) throw new AppError("CONFLICT", "This invite link has already been used; ask for a new one");
  const existing = await tx.membership.findUnique({ where: { orgId_userId: { orgId: invite.orgId, userId: actor.userId } } });
  if (existing) throw new AppError("CONFLICT", `You are already a member of ${invite.org.name}`);
  await tx.membership.create({ data: { orgId: invite.orgId, userId: actor.userId, role: invite.role } });
  await recordAudit(tx, { orgId: invite.orgId, actor, action: "invite.accept", target: invite.id, data: { role: invite.role } });
  return { orgId: invite.orgId, role: invite.role };
}

export async function acceptInvite(db: Db, { token, actor }: { token: string; actor: Actor }): Promise<{ orgId: string }> {
  return db.$transaction(async (tx) => {
    const result = await acceptInviteInTx(tx, { token, actor });
    await tx.user.update({ where: { id: actor.userId }, data: { lastOrgId: result.orgId } });
    return result;
  });
}
