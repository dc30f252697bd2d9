import crypto from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";
import { encode } from "next-auth/jwt";
import { TRPCError } from "@trpc/server";
import { afterAll, describe, expect, it } from "vitest";
import { GET as orgEvents } from "../../app/api/events/route";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { sessionCookie } from "../../tests/helpers/session";
import { createContext } from "../api/context";
import { createCaller } from "../api/root";
import { env } from "../env";
import { realtimeHub } from "../jobs/hub";
import { removeMember } from "../orgs/orgs.service";
import { signInWithPassword, signUp } from "./accounts.service";
import { authOptions } from "./next-auth";
import { sessionCookieName } from "./session";

// Sessions end on the server: once signed out, a copy of the old cookie is refused everywhere
// — tRPC, route handlers, next-auth's own session endpoint — with 401, not honoured until the
// 30-day token runs out.

// next-auth's request handler without Next's request scope: the function /api/auth/* hands
// every request to (the package does not export its path, so it is loaded by file).
const require = createRequire(import.meta.url);
type AuthResponse = { body?: unknown; cookies?: Array<{ name: string; value: string; options: Record<string, unknown> }> };
const { AuthHandler } = require(path.join(path.dirname(require.resolve("next-auth")), "core/index.js")) as {
  AuthHandler: (params: { options: ReturnType<typeof authOptions>; req: Record<string, unknown> }) => Promise<AuthResponse>;
};

const db = testDb();
const unique = () => crypto.randomBytes(5).toString("hex");
const password = "a sturdy passphrase";
afterAll(() => realtimeHub().stop());

/** auth.me as the portal's pages call it; its error code, or OK. */
async function whoAmI(cookie: string): Promise<string> {
  try {
    const me = await createCaller(await createContext(new Headers({ cookie }))).auth.me();
    return me.user.email;
  } catch (error) {
    return error instanceof TRPCError ? error.code : String(error);
  }
}

/** GET /api/events's status with this cookie (a route handler, not tRPC). */
async function eventsStatus(cookie: string): Promise<number> {
  const controller = new AbortController();
  const res = await orgEvents(new Request("http://localhost/api/events", { headers: { cookie }, signal: controller.signal }));
  controller.abort();
  await res.body?.cancel().catch(() => {});
  return res.status;
}

/** next-auth's own handler, as /api/auth/* runs it, with a valid CSRF token. */
function nextAuth() {
  const options = authOptions();
  const csrfToken = crypto.randomBytes(32).toString("hex");
  const csrfCookie = `${csrfToken}|${crypto.createHash("sha256").update(`${csrfToken}${options.secret}`).digest("hex")}`;
  const call = (action: "callback" | "signout" | "session", { providerId, body, cookie }: { providerId?: string; body?: Record<string, string>; cookie?: string } = {}) =>
    AuthHandler({
      options,
      req: {
        action,
        providerId,
        method: action === "session" ? "GET" : "POST",
        body: { ...body, csrfToken },
        cookies: { "next-auth.csrf-token": csrfCookie, ...(cookie ? { [sessionCookieName()]: cookie } : {}) },
        headers: { host: "localhost", "x-forwarded-for": `192.0.2.${Math.floor(Math.random() * 250)}` },
        query: {},
      },
    });
  return {
    async signIn(email: string): Promise<string> {
      const res = await call("callback", { providerId: "password", body: { email, password } });
      const session = res.cookies?.find((c) => c.name === sessionCookieName());
      if (!session?.value) throw new Error(`next-auth did not sign in: ${JSON.stringify(res)}`);
      return session.value;
    },
    signOut: (token: string) => call("signout", { cookie: token }),
    session: (token: string) => call("session", { cookie: token }),
  };
}

const asCookie = (token: string) => `${sessionCookieName()}=${token}`;

describe("sessions", () => {
  it("signing out ends the session: the old cookie gets 401 afterwards", async () => {
    const email = `leaver-${unique()}@example.test`;
    await signUp(db, { input: { email, name: "Lee Leaver", password }, allowSignup: true });
    const auth = nextAuth();
    const token = await auth.signIn(email);
    expect(await whoAmI(asCookie(token))).toBe(email);
    expect(await eventsStatus(asCookie(token))).toBe(200);
    expect((await auth.session(token)).body).toMatchObject({ user: { email } });

    await auth.signOut(token);
    expect(await whoAmI(asCookie(token))).toBe("UNAUTHORIZED");
    expect(await eventsStatus(asCookie(token))).toBe(401);
    // next-auth's session endpoint says signed out too, and clears the cookie.
    const session = await auth.session(token);
    expect(session.body).toEqual({});
    expect(session.cookies?.find((c) => c.name === sessionCookieName())).toMatchObject({ value: "", options: { maxAge: 0 } });
  });

  it("signs in anew after signing out, and each sign-in is a session of its own", async () => {
    const email = `twice-${unique()}@example.test`;
    await signUp(db, { input: { email, name: "Tia Twice", password }, allowSignup: true });
    const auth = nextAuth();
    const laptop = await auth.signIn(email);
    const phone = await auth.signIn(email);
    await auth.signOut(laptop);
    expect(await whoAmI(asCookie(laptop))).toBe("UNAUTHORIZED");
    expect(await whoAmI(asCookie(phone))).toBe(email);
  });

  it("ends a removed member's sessions", async () => {
    const { orgId, owner } = await createOrgWithMember(db, "owner");
    const operator = await addMember(db, orgId, "operator");
    const cookie = await sessionCookie(db, operator.userId);
    expect(await eventsStatus(cookie)).toBe(200);
    await removeMember(db, { actor: owner, userId: operator.userId });
    expect(await whoAmI(cookie)).toBe("UNAUTHORIZED");
    expect(await eventsStatus(cookie)).toBe(401);
    expect(await whoAmI(await sessionCookie(db, owner.userId))).not.toBe("UNAUTHORIZED");
  });

  it("counts a cookie that names no session as signed out", async () => {
    const { owner } = await createOrgWithMember(db, "owner");
    const withoutSession = asCookie(await encode({ token: { sub: owner.userId }, secret: env().AUTH_SECRET }));
    expect(await whoAmI(withoutSession)).toBe("UNAUTHORIZED");
    const madeUp = asCookie(await encode({ token: { sub: owner.userId, sid: crypto.randomUUID() }, secret: env().AUTH_SECRET }));
    expect(await whoAmI(madeUp)).toBe("UNAUTHORIZED");
    // Someone else's session id in a cookie forged with the secret still names the wrong person.
    const { owner: other } = await createOrgWithMember(db, "owner");
    const { id } = await db.authSession.create({ data: { userId: other.userId, expiresAt: new Date(Date.now() + 3_600_000) } });
    expect(await whoAmI(asCookie(await encode({ token: { sub: owner.userId, sid: id }, secret: env().AUTH_SECRET })))).toBe("UNAUTHORIZED");
    // A cookie that does not percent-decode (whole, or one of a split session's pieces) is no session, not a failure.
    for (const broken of [asCookie("%"), `${sessionCookieName()}.0=%E0%A4%A`]) {
      expect(await whoAmI(broken)).toBe("UNAUTHORIZED");
      expect(await eventsStatus(broken)).toBe(401);
    }
  });

  it("refuses a session that ran out", async () => {
    const { owner } = await createOrgWithMember(db, "owner");
    const cookie = await sessionCookie(db, owner.userId);
    await db.authSession.updateMany({ where: { userId: owner.userId }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect(await whoAmI(cookie)).toBe("UNAUTHORIZED");
  });

  it("signs a person out everywhere: every browser of theirs, this one included, and nobody else's", async () => {
    const { orgId, owner } = await createOrgWithMember(db, "owner");
    const colleague = await addMember(db, orgId, "viewer");
    const [laptop, phone, theirs] = [await sessionCookie(db, owner.userId), await sessionCookie(db, owner.userId), await sessionCookie(db, colleague.userId)];
    const caller = createCaller(await createContext(new Headers({ cookie: laptop })));
    expect(await caller.auth.signOutEverywhere()).toEqual({ ended: 2 });
    expect(await whoAmI(laptop)).toBe("UNAUTHORIZED");
    expect(await whoAmI(phone)).toBe("UNAUTHORIZED");
    expect(await whoAmI(theirs)).not.toBe("UNAUTHORIZED");
    expect(await db.auditEvent.count({ where: { orgId, action: "auth.sign_out_everywhere", actorId: owner.userId } })).toBe(1);
  });

  it("changing the password ends the other sessions and keeps this one", async () => {
    const email = `changer-${unique()}@example.test`;
    const { id: userId } = await signUp(db, { input: { email, name: "Cai Changer", password }, allowSignup: true });
    const [here, elsewhere] = [await sessionCookie(db, userId), await sessionCookie(db, userId)];
    const caller = createCaller(await createContext(new Headers({ cookie: here })));
    const newPassword = "an entirely new passphrase";
    expect(await caller.auth.changePassword({ currentPassword: password, newPassword })).toEqual({ endedSessions: 1 });
    expect(await whoAmI(here)).toBe(email);
    expect(await whoAmI(elsewhere)).toBe("UNAUTHORIZED");
    await expect(signInWithPassword(db, { email, password })).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    await expect(signInWithPassword(db, { email, password: newPassword })).resolves.toMatchObject({ email });
  });

  it("refuses a password change with the wrong current password, or to a weak one, changing nothing", async () => {
    const email = `careful-${unique()}@example.test`;
    const { id: userId } = await signUp(db, { input: { email, name: "Cy Careful", password }, allowSignup: true });
    const other = await sessionCookie(db, userId);
    const caller = createCaller(await createContext(new Headers({ cookie: await sessionCookie(db, userId) })));
    await expect(caller.auth.changePassword({ currentPassword: "not my password", newPassword: "an entirely new passphrase" })).rejects.toMatchObject({
      code: "BAD_REQUEST",
      message: "Your current password is not right, so the password was not changed",
    });
    await expect(caller.auth.changePassword({ currentPassword: password, newPassword: "password1234" })).rejects.toMatchObject({
      code: "BAD_REQUEST",
      message: expect.stringMatching(/^Choose a password that is harder to guess\. This is similar to a commonly used password/),
    });
    expect(await whoAmI(other)).toBe(email);
    await expect(signInWithPassword(db, { email, password })).resolves.toMatchObject({ email });
  });

  it("tells a Firebase account it has no password here", async () => {
    const { owner } = await createOrgWithMember(db, "owner");
    const caller = createCaller(await createContext(new Headers({ cookie: await sessionCookie(db, owner.userId) })));
    await expect(caller.auth.changePassword({ currentPassword: "anything", newPassword: "an entirely new passphrase" })).rejects.toMatchObject({
      code: "BAD_REQUEST",
      message: expect.stringMatching(/You sign in with Firebase/),
    });
  });
});
