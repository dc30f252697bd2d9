import { z } from "zod";
import { roleSchema, type Role } from "./roles";

export const emailSchema = z.string().trim().toLowerCase().pipe(z.email("Enter a valid email address")).pipe(z.string().max(254));
export const passwordSchema = z.string().min(12, "Use at least 12 characters").max(200, "Use at most 200 characters");

export const signUpInput = z.object({
  email: emailSchema,
  password: passwordSchema,
  name: z.string().trim().min(1, "Enter your name").max(100),
  inviteToken: z.string().max(200).optional(),
});

export const signInInput = z.object({ email: emailSchema, password: z.string().min(1).max(200) });

export const changePasswordInput = z.object({
  currentPassword: z.string().min(1, "Enter your current password").max(200),
  newPassword: passwordSchema,
});

export const tokenScopes = ["read", "write", "admin"] as const;
export const tokenScopeSchema = z.enum(tokenScopes);
/** The role each scope needs: a token never has more rights than the person who makes it. */
export const tokenScopeRole: Record<(typeof tokenScopes)[number], Role> = { read: "viewer", write: "operator", admin: "admin" };

export const createTokenInput = z.object({
  name: z.string().trim().min(1, "Name the token after what will use it").max(80),
  scopes: z.array(tokenScopeSchema).min(1).max(3),
  expiresInDays: z.number().int().min(1).max(3650).optional(),
});

export const apiTokenSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  prefix: z.string(),
  scopes: z.array(z.string()),
  createdAt: z.date(),
  expiresAt: z.date().nullable(),
  lastUsedAt: z.date().nullable(),
  revokedAt: z.date().nullable(),
  owner: z.string(),
});

export const accountSchema = z.object({
  user: z.object({ id: z.uuid(), email: z.string(), name: z.string(), isInstanceAdmin: z.boolean() }),
  orgs: z.array(z.object({ id: z.uuid(), name: z.string(), slug: z.string(), role: roleSchema })),
  currentOrg: z.object({ id: z.uuid(), name: z.string(), role: roleSchema }).nullable(),
});

export const signInMethodsSchema = z.object({
  password: z.boolean(),
  allowSignup: z.boolean(),
  firebase: z.object({ apiKey: z.string(), projectId: z.string(), authDomain: z.string().nullable(), emulatorHost: z.string().nullable() }).nullable(),
});
