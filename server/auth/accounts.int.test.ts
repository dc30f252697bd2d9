import crypto from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { createDb, type Db } from "../db";
import { migrate } from "../db/migrate";
import { createInvite } from "../orgs/invites.service";
import { env } from "../env";
import { signInMethods, signInWithFirebaseIdentity, signInWithPassword, signUp } from "./accounts.service";
import { signInInput, signUpInput } from "./auth.schemas";

const db = testDb();
const unique = () => crypto.randomBytes(5).toString("hex");
const password = "correct horse battery staple";

function newAccount(overrides: Partial<{ email: string; name: string; password: string; inviteToken: string }> = {}) {
  const id = unique();
  return signUpInput.parse({ email: `person-${id}@example.test`, name: `Person ${id}`, password, ...overrides });
}

async function membershipsOf(database: Db, userId: string) {
  return database.membership.findMany({ where: { userId }, include: { org: true } });
}

/**
 * A database of its own, migrated and empty: "the first account on a new install" can only be
 * observed where no other test has made accounts.
 */
async function freshDatabase(): Promise<{ db: Db; drop(): Promise<void> }> {
  const base = new URL(process.env.DATABASE_URL!);
  const name = `${base.pathname.slice(1)}_fresh_${unique()}`;
  const run = async (sql: string) => {
    const client = new pg.Client({ connectionString: base.toString() });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE DATABASE "${name}"`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  await migrate({ url: url.toString() });
  const fresh = createDb(url.toString(), 4);
  return {
    db: fresh,
    async drop() {
      await fresh.$disconnect();
      await run(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}

describe("sign-up on a new install", () => {
  let fresh: Awaited<ReturnType<typeof freshDatabase>>;
  beforeAll(async () => {
    fresh = await freshDatabase();
  });
  afterAll(async () => {
    await fresh?.drop();
  });

  it("makes the first account owner of the first organisation, even with sign-up closed, then closes the door", async () => {
    const closedSettings = { ...env(), ALLOW_SIGNUP: false };
    expect((await signInMethods(fresh.db, closedSettings)).allowSignup).toBe(true);
    const first = await signUp(fresh.db, { input: newAccount({ name: "Ada" }), allowSignup: false });
    const [membership] = await membershipsOf(fresh.db, first.id);
    expect(membership).toMatchObject({ role: "owner", org: { name: "Ada's lab" } });
    expect(await fresh.db.org.count()).toBe(1);
    expect((await fresh.db.user.findUniqueOrThrow({ where: { id: first.id } })).lastOrgId).toBe(membership.orgId);
    // The first account is the instance's admin; no later one is.
    expect((await fresh.db.user.findUniqueOrThrow({ where: { id: first.id } })).isInstanceAdmin).toBe(true);

    const closed = newAccount();
    await expect(signUp(fresh.db, { input: closed, allowSignup: false })).rejects.toMatchObject({
      code: "FORBIDDEN",
      message: expect.stringContaining("invite"),
    });
    expect(await fresh.db.user.findUnique({ where: { email: closed.email } })).toBeNull();
    expect(await fresh.db.org.count()).toBe(1);
    const invited = await signUp(fresh.db, { input: newAccount(), allowSignup: true });
    expect((await fresh.db.user.findUniqueOrThrow({ where: { id: invited.id } })).isInstanceAdmin).toBe(false);
    // The sign-in page stops offering sign-up, unless an instance admin opened it.
    expect((await signInMethods(fresh.db, closedSettings)).allowSignup).toBe(false);
    expect((await signInMethods(fresh.db, { ...env(), ALLOW_SIGNUP: true })).allowSignup).toBe(true);
  });
});

describe("concurrent sign-ups on a new install", () => {
  let fresh: Awaited<ReturnType<typeof freshDatabase>>;
  beforeAll(async () => {
    fresh = await freshDatabase();
  });
  afterAll(async () => {
    await fresh?.drop();
  });

  it("lets exactly one of them become the first owner when sign-up is closed", async () => {
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => signUp(fresh.db, { input: newAccount(), allowSignup: false })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((r) => r.status === "rejected")) expect(r.reason).toMatchObject({ code: "FORBIDDEN" });
    expect(await fresh.db.user.count()).toBe(1);
    expect(await fresh.db.membership.findMany({ select: { role: true } })).toEqual([{ role: "owner" }]);
  });
});

describe("sign-up", () => {
  it("gives a later account without an invite an organisation of its own", async () => {
    const { orgId: existingOrg } = await createOrgWithMember(db);
    const user = await signUp(db, { input: newAccount({ name: "Grace" }), allowSignup: true });
    const memberships = await membershipsOf(db, user.id);
    expect(memberships).toHaveLength(1);
    expect(memberships[0]).toMatchObject({ role: "owner", org: { name: "Grace's lab" } });
    expect(memberships[0].orgId).not.toBe(existingOrg);
    expect(await db.membership.count({ where: { orgId: memberships[0].orgId } })).toBe(1);
  });

  it("joins the invite's organisation with the invite's role, and makes no organisation of its own", async () => {
    const { orgId, owner } = await createOrgWithMember(db);
    const invite = await createInvite(db, { actor: owner, role: "operator", expiresInDays: 7, baseUrl: "http://gantry.test" });
    const inviteToken = invite.url.split("/invite/")[1];
    // An invite opens the door even when sign-up is closed.
    const user = await signUp(db, { input: newAccount({ inviteToken }), allowSignup: false });
    const memberships = await membershipsOf(db, user.id);
    expect(memberships.map((m) => ({ orgId: m.orgId, role: m.role }))).toEqual([{ orgId, role: "operator" }]);
    expect((await db.user.findUniqueOrThrow({ where: { id: user.id } })).lastOrgId).toBe(orgId);
    expect(await db.invite.findUniqueOrThrow({ where: { id: invite.id } })).toMatchObject({ acceptedById: user.id });
  });

  it("creates no account when the invite is not valid", async () => {
    const input = newAccount({ inviteToken: "no-such-invite-token" });
    await expect(signUp(db, { input, allowSignup: true })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await db.user.findUnique({ where: { email: input.email } })).toBeNull();
  });

  it("refuses an email that already has an account, whatever its case", async () => {
    const input = newAccount();
    await signUp(db, { input, allowSignup: true });
    const again = signUpInput.parse({ ...input, email: input.email.toUpperCase(), name: "Someone else" });
    await expect(signUp(db, { input: again, allowSignup: true })).rejects.toMatchObject({
      code: "CONFLICT",
      message: "An account with this email already exists; sign in instead",
    });
    expect(await db.user.count({ where: { email: input.email } })).toBe(1);
  });

  it("refuses an account without an invite when sign-up is closed", async () => {
    await createOrgWithMember(db);
    const input = newAccount();
    await expect(signUp(db, { input, allowSignup: false })).rejects.toMatchObject({ code: "FORBIDDEN" });
    expect(await db.user.findUnique({ where: { email: input.email } })).toBeNull();
  });

  it("stores the password only as an argon2 hash", async () => {
    const user = await signUp(db, { input: newAccount(), allowSignup: true });
    const row = await db.user.findUniqueOrThrow({ where: { id: user.id } });
    expect(row.passwordHash).toMatch(/^\$argon2id\$/);
    expect(row.passwordHash).not.toContain(password);
  });
});

describe("password sign-in", () => {
  it("signs in with the right password and records it", async () => {
    const input = newAccount();
    const user = await signUp(db, { input, allowSignup: true });
    const signedIn = await signInWithPassword(db, signInInput.parse({ email: input.email.toUpperCase(), password }));
    expect(signedIn).toEqual(user);
    expect(await db.auditEvent.count({ where: { actorId: user.id, action: "auth.sign_in" } })).toBe(1);
  });

  it("answers a wrong password and an unknown email alike", async () => {
    const input = newAccount();
    const user = await signUp(db, { input, allowSignup: true });
    const wrong = await signInWithPassword(db, { email: input.email, password: "not the password" }).catch((e: unknown) => e);
    const unknown = await signInWithPassword(db, { email: `nobody-${unique()}@example.test`, password }).catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: "UNAUTHORIZED", message: "Wrong email or password" });
    expect(unknown).toMatchObject({ code: "UNAUTHORIZED", message: (wrong as Error).message });
    // The owner of the account can see someone tried.
    expect(await db.auditEvent.count({ where: { actorId: user.id, action: "auth.sign_in_failed" } })).toBe(1);
  });
});

describe("Firebase sign-in", () => {
  it("creates an account with its own organisation on first sign-in, and finds it again by uid", async () => {
    const uid = `uid-${unique()}`;
    const email = `Fire-${unique()}@Example.test`;
    const user = await signInWithFirebaseIdentity(db, { uid, email, emailVerified: true, name: "Fire Person" }, { allowSignup: true });
    expect(user.email).toBe(email.toLowerCase());
    expect(await membershipsOf(db, user.id)).toMatchObject([{ role: "owner", org: { name: "Fire Person's lab" } }]);
    const again = await signInWithFirebaseIdentity(db, { uid, email: "changed@example.test", emailVerified: true }, { allowSignup: false });
    expect(again.id).toBe(user.id);
  });

  it("never links a password account to a Firebase identity, verified or not", async () => {
    const input = newAccount();
    const user = await signUp(db, { input, allowSignup: true });
    for (const emailVerified of [false, true]) {
      await expect(signInWithFirebaseIdentity(db, { uid: `uid-${unique()}`, email: input.email, emailVerified }, { allowSignup: true })).rejects.toMatchObject({ code: "CONFLICT" });
    }
    expect((await db.user.findUniqueOrThrow({ where: { id: user.id } })).firebaseUid).toBeNull();
    expect(await membershipsOf(db, user.id)).toHaveLength(1);
  });

  it("refuses a new Firebase account when sign-up is closed", async () => {
    await createOrgWithMember(db);
    const email = `closed-${unique()}@example.test`;
    await expect(signInWithFirebaseIdentity(db, { uid: `uid-${unique()}`, email, emailVerified: true }, { allowSignup: false })).rejects.toMatchObject({ code: "FORBIDDEN" });
    expect(await db.user.findUnique({ where: { email } })).toBeNull();
  });
});
