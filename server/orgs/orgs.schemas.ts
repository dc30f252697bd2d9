import { z } from "zod";
import { roleSchema } from "../auth/roles";

export const orgNameSchema = z.string().trim().min(1, "Name the organisation").max(80);

export const createOrgInput = z.object({ name: orgNameSchema });
export const renameOrgInput = z.object({ name: orgNameSchema });
export const switchOrgInput = z.object({ orgId: z.uuid() });

export const orgSummarySchema = z.object({ id: z.uuid(), name: z.string(), slug: z.string(), role: roleSchema });

export const memberSchema = z.object({
  userId: z.uuid(),
  name: z.string(),
  email: z.string(),
  role: roleSchema,
  joinedAt: z.date(),
});

export const setRoleInput = z.object({ userId: z.uuid(), role: roleSchema });
export const removeMemberInput = z.object({ userId: z.uuid() });

export const createInviteInput = z.object({
  role: roleSchema.exclude(["owner"]),
  expiresInDays: z.number().int().min(1).max(30).default(7),
});
export const inviteTokenInput = z.object({ token: z.string().min(10).max(200) });
export const inviteIdInput = z.object({ inviteId: z.uuid() });

export const inviteSchema = z.object({
  id: z.uuid(),
  role: roleSchema,
  createdAt: z.date(),
  expiresAt: z.date(),
  acceptedAt: z.date().nullable(),
  revokedAt: z.date().nullable(),
});
