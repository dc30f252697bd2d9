import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import { recordAudit } from "../audit/audit.service";
import { acceptInviteInTx } from "../orgs/invites.service";
import { createOrgInTx } from "../orgs/orgs.service";
import { isInstanceAdmin, makeFirstAccountInstanceAdmin } from "./instance-admins.service";
import { burnPasswordCheck, checkPasswordStrength, hashPassword, verifyPassword } from "./passwords";
import { clearSignInFailures, consumeAddressLimit, rateLimits, recordSignInFailure, slowDownSignIn } from "./rate-limit";
import type { accountSchema, signInInput, signInMethodsSchema, signUpInput } from "./auth.schemas";
import type { Env } from "../env";
import { listMyOrgs } from "../orgs/orgs.service";

export interface SessionUser {
  id: string;
  email: string;
  name: string;
}

/**
 * Creates an account. The first account on a new install owns the first organisation; later
 * ones join through an invite, or get an organisation of their own.
 */
export async function signUp(
  db: Db,
  { input, allowSignup, address, signUpsPerHour }: { input: z.output<typeof signUpInput>; allowSignup: boolean; address?: string; signUpsPerHour?: number },
): Promise<SessionUser> {
  const rule = signUpsPerHour === undefined ? rateLimits.signUpPerAddress : { ...rateLimits.signUpPerAddress, limit: signUpsPerHour };
  await consumeAddressLimit(db, "sign-up", address, rule);
  // The cheap refusals come before the deliberately slow password hash.
  if (!allowSignup && !input.inviteToken && (await db.user.count({ take: 1 })) > 0) {
    throw new AppError("FORBIDDEN", "Sign-up is closed on this Gantry; ask an admin for an invite link");
  }
  if (await db.user.findUnique({ where: { email: input.email }, select: { id: true } })) {
    throw new AppError("CONFLICT", "An account with this email already exists; sign in instead");
  }
  checkPasswordStrength(input.password, { userInputs: [input.email, input.name] });
  const passwordHash = await hashPassword(input.password);
  return db.$transaction(async (tx) => {
    // Serialises concurrent first sign-ups so exactly one becomes the first owner.
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(7351002202)`;
    if (!allowSignup && !input.inviteToken && (await tx.user.count()) > 0) {
      throw new AppError("FORBIDDEN", "Sign-up is closed on this Gantry; ask an admin for an invite link");
    }
    if (await tx.user.findUnique({ where: { email: input.email } })) {
      throw new AppError("CONFLICT", "An account with this email already exists; sign in instead");
    }
    const user = await tx.user.create({ data: { email: input.email, name: input.name, passwordHash } });
    await finishNewAccount(tx, user, input.inviteToken);
    return { id: user.id, email: user.email, name: user.name };
  });
}

async function finishNewAccount(tx: Tx, user: { id: string; name: string; email: string }, inviteToken?: string): Promise<void> {
  const actor = { userId: user.id, label: user.name };
  let orgId: string;
  if (inviteToken) {
    orgId = (await acceptInviteInTx(tx, { token: inviteToken, actor })).orgId;
  } else {
    orgId = (await createOrgInTx(tx, { name: `${user.name}'s lab`, ownerId: user.id })).id;
  }
  await tx.user.update({ where: { id: user.id }, data: { lastOrgId: orgId } });
  await makeFirstAccountInstanceAdmin(tx, user.id);
  await recordAudit(tx, { orgId, actor, action: "auth.sign_up", target: user.email });
}

/**
 * Guessing is limited per network address and per (address, account); guesses at one account
 * from many addresses slow it down rather than lock its owner out.
 */
export async function signInWithPassword(db: Db, input: z.output<typeof signInInput>, { address }: { address?: string } = {}): Promise<SessionUser> {
  await consumeAddressLimit(db, "sign-in", address, rateLimits.signInPerAddress);
  await consumeAddressLimit(db, `sign-in:${input.email}`, address, rateLimits.signInPerAddressAndEmail);
  await slowDownSignIn(db, input.email);
  const user = await db.user.findUnique({ where: { email: input.email } });
  if (!user?.passwordHash) {
    await burnPasswordCheck(input.password);
    await recordSignInFailure(db, input.email);
    throw new AppError("UNAUTHORIZED", "Wrong email or password");
  }
  if (!(await verifyPassword(user.passwordHash, input.password))) {
    await recordSignInFailure(db, input.email);
    await recordAudit(db, { orgId: user.lastOrgId, actor: { userId: user.id, label: user.name }, action: "auth.sign_in_failed", target: user.email, data: { method: "password" } });
    throw new AppError("UNAUTHORIZED", "Wrong email or password");
  }
  await clearSignInFailures(db, input.email);
  await recordSignIn(db, user, "password");
  return { id: user.id, email: user.email, name: user.name };
}

/**
 * Maps a verified Firebase identity to a Gantry user by uid. A first sign-in links an
 * existing account with the same email only when Firebase has verified that email.
 */
export async function signInWithFirebaseIdentity(
  db: Db,
  identity: { uid: string; email?: string; emailVerified: boolean; name?: string },
  { allowSignup }: { allowSignup: boolean },
): Promise<SessionUser> {
  const existing = await db.user.findUnique({ where: { firebaseUid: identity.uid } });
  if (existing) {
    await recordSignIn(db, existing, "firebase");
    return { id: existing.id, email: existing.email, name: existing.name };
  }
  if (!identity.email) throw new AppError("BAD_REQUEST", "This Firebase account has no email address; Gantry needs one to create your account");
  const email = identity.email.toLowerCase();
  const user = await db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(7351002202)`;
    // A concurrent first sign-in of the same Firebase account (a double click, two tabs) may
    // have created or linked the user while this one waited for the lock.
    const linked = await tx.user.findUnique({ where: { firebaseUid: identity.uid } });
    if (linked) return linked;
    const byEmail = await tx.user.findUnique({ where: { email } });
    if (byEmail) {
      if (!identity.emailVerified) throw new AppError("CONFLICT", `An account for ${email} already exists; verify this email with Firebase, or sign in with your password`);
      // Gantry never verified the email of a password account: linking it would hand an account
      // made in someone else's name to whoever owns the address, or the reverse.
      if (byEmail.passwordHash) throw new AppError("CONFLICT", `An account for ${email} already exists with a password; sign in with your password`);
      if (byEmail.firebaseUid && byEmail.firebaseUid !== identity.uid) {
        throw new AppError("CONFLICT", `The Gantry account for ${email} is linked to a different Firebase account; sign in with that one, or with your password`);
      }
      return tx.user.update({ where: { id: byEmail.id }, data: { firebaseUid: identity.uid } });
    }
    if (!allowSignup && (await tx.user.count()) > 0) throw new AppError("FORBIDDEN", "Sign-up is closed on this Gantry; ask an admin for an invite link");
    const created = await tx.user.create({ data: { email, name: identity.name?.trim() || email.split("@")[0], firebaseUid: identity.uid } });
    await finishNewAccount(tx, created);
    return tx.user.findUniqueOrThrow({ where: { id: created.id } });
  });
  await recordSignIn(db, user, "firebase");
  return { id: user.id, email: user.email, name: user.name };
}

async function recordSignIn(db: Db, user: { id: string; name: string; email: string; lastOrgId: string | null }, method: string): Promise<void> {
  await recordAudit(db, { orgId: user.lastOrgId, actor: { userId: user.id, label: user.name }, action: "auth.sign_in", target: user.email, data: { method } });
}

export async function getSessionUser(db: Db, userId: string): Promise<SessionUser | null> {
  return db.user.findUnique({ where: { id: userId }, select: { id: true, email: true, name: true } });
}

/** The signed-in person, their organisations, and the one this request acts in. */
export async function describeAccount(
  db: Db,
  { userId, orgActor, instanceAdmins }: { userId: string; orgActor: { orgId: string } | null; instanceAdmins: string[] },
): Promise<z.infer<typeof accountSchema>> {
  const user = await getSessionUser(db, userId);
  if (!user) throw new AppError("UNAUTHORIZED", "Your account no longer exists");
  const orgs = await listMyOrgs(db, user.id);
  const current = orgActor ? orgs.find((o) => o.id === orgActor.orgId) : undefined;
  const isAdmin = await isInstanceAdmin(db, { userId, instanceAdmins });
  return { user: { ...user, isInstanceAdmin: isAdmin }, orgs, currentOrg: current ? { id: current.id, name: current.name, role: current.role } : null };
}

/**
 * What the sign-in page offers; only public Firebase web settings, never a secret. Sign-up is
 * offered while no account exists (the first owner makes theirs), then only when ALLOW_SIGNUP.
 */
export async function signInMethods(db: Db, settings: Env): Promise<z.infer<typeof signInMethodsSchema>> {
  return {
    password: true,
    allowSignup: settings.ALLOW_SIGNUP || (await db.user.count({ take: 1 })) === 0,
    firebase: settings.isFirebaseEnabled
      ? { apiKey: settings.FIREBASE_API_KEY!, projectId: settings.FIREBASE_PROJECT_ID!, authDomain: settings.FIREBASE_AUTH_DOMAIN ?? null, emulatorHost: settings.FIREBASE_AUTH_EMULATOR_HOST ?? null }
      : null,
  };
}
