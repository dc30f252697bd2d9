import crypto from "node:crypto";
import type { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import { recordAudit } from "../audit/audit.service";
import { hasRole, lowerRole, type OrgActor, type Role } from "./roles";
import { tokenScopeRole, tokenScopes, type apiTokenSchema, type createTokenInput } from "./auth.schemas";

// Tokens look like `gty_<8 hex prefix>_<43 base64url secret>`: the prefix identifies a token
// in lists, the whole string is stored only as a sha256 (it has 256 bits of entropy).
const TOKEN_RE = /^gty_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$/;
const hashToken = (token: string) => crypto.createHash("sha256").update(token).digest("hex");

/** The highest role a token's scopes allow. */
export function scopeCeiling(scopes: string[]): Role {
  return scopes.reduce<Role>((best, s) => {
    const r = tokenScopeRole[s as keyof typeof tokenScopeRole];
    return r && lowerRole(best, r) === best ? r : best;
  }, "viewer");
}

export async function createApiToken(db: Db, { actor, input }: { actor: OrgActor; input: z.output<typeof createTokenInput> }): Promise<{ id: string; token: string }> {
  if (actor.tokenId) throw new AppError("FORBIDDEN", "API tokens cannot create other tokens; sign in to the portal to make one");
  const tooHigh = input.scopes.filter((scope) => !hasRole(actor.role, tokenScopeRole[scope]));
  if (tooHigh.length) {
    const allowed = tokenScopes.filter((scope) => hasRole(actor.role, tokenScopeRole[scope]));
    const needs = tooHigh.map((scope) => `${scope} needs the ${tokenScopeRole[scope]} role`).join(", ");
    throw new AppError("FORBIDDEN", `A token cannot have more rights than you: ${needs}, and you are ${actor.role === "operator" || actor.role === "admin" ? "an" : "a"} ${actor.role} here. Choose ${allowed.join(" or ")}`);
  }
  const prefix = crypto.randomBytes(4).toString("hex");
  const token = `gty_${prefix}_${crypto.randomBytes(32).toString("base64url")}`;
  const expiresAt = input.expiresInDays ? new Date(Date.now() + input.expiresInDays * 86_400_000) : null;
  return db.$transaction(async (tx) => {
    const row = await tx.apiToken.create({ data: { orgId: actor.orgId, userId: actor.userId, name: input.name, prefix, hash: hashToken(token), scopes: [...new Set(input.scopes)], expiresAt } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "token.create", target: input.name, data: { tokenId: row.id, prefix, scopes: row.scopes } });
    return { id: row.id, token };
  });
}

/** Admins see every token of the organisation; others see their own. Secrets never leave. */
export async function listApiTokens(db: Db, actor: OrgActor): Promise<z.infer<typeof apiTokenSchema>[]> {
  const isAdmin = actor.role === "admin" || actor.role === "owner";
  const rows = await db.apiToken.findMany({
    where: { orgId: actor.orgId, ...(isAdmin ? {} : { userId: actor.userId }) },
    include: { user: { select: { name: true } } },
    orderBy: { createdAt: "desc" },
  });
  return rows.map((t) => ({ id: t.id, name: t.name, prefix: t.prefix, scopes: t.scopes, createdAt: t.createdAt, expiresAt: t.expiresAt, lastUsedAt: t.lastUsedAt, revokedAt: t.revokedAt, owner: t.user.name }));
}

export async function revokeApiToken(db: Db, { actor, tokenId }: { actor: OrgActor; tokenId: string }): Promise<void> {
  await db.$transaction(async (tx) => {
    const token = await tx.apiToken.findFirst({ where: { id: tokenId, orgId: actor.orgId } });
    if (!token) throw new AppError("NOT_FOUND", "No such token in this organisation");
    const isAdmin = actor.role === "admin" || actor.role === "owner";
    if (token.userId !== actor.userId && !isAdmin) throw new AppError("FORBIDDEN", "Only the token's owner or an admin can revoke it");
    if (token.revokedAt) return;
    await tx.apiToken.update({ where: { id: tokenId }, data: { revokedAt: new Date() } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "token.revoke", target: token.name, data: { tokenId, prefix: token.prefix } });
  });
}

/** Resolves a bearer token to the user acting through it, with the role its scopes allow. */
export async function authenticateApiToken(db: Db, bearer: string): Promise<OrgActor> {
  if (!TOKEN_RE.test(bearer)) throw new AppError("UNAUTHORIZED", "That API token is malformed; tokens start with gty_ and are shown once when created");
  const token = await db.apiToken.findUnique({ where: { hash: hashToken(bearer) }, include: { user: true } });
  if (!token || token.revokedAt) throw new AppError("UNAUTHORIZED", "That API token is not valid or has been revoked");
  if (token.expiresAt && token.expiresAt < new Date()) throw new AppError("UNAUTHORIZED", `API token "${token.name}" expired on ${token.expiresAt.toISOString().slice(0, 10)}`);
  const membership = await db.membership.findUnique({ where: { orgId_userId: { orgId: token.orgId, userId: token.userId } } });
  if (!membership) throw new AppError("UNAUTHORIZED", "The owner of this API token is no longer a member of its organisation");
  // Touch at most once a minute: a busy agent must not write on every request.
  if (!token.lastUsedAt || Date.now() - token.lastUsedAt.getTime() > 60_000) {
    await db.apiToken.update({ where: { id: token.id }, data: { lastUsedAt: new Date() } });
  }
  return { userId: token.userId, label: token.user.name, tokenId: token.id, orgId: token.orgId, role: lowerRole(membership.role, scopeCeiling(token.scopes)) };
}
