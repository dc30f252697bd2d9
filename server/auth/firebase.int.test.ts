import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { startFirebaseEmulator, type FirebaseEmulator } from "../../tests/helpers/firebase-emulator";
import { signInWithFirebaseIdentity, signUp } from "./accounts.service";
import type { verifyFirebaseIdToken as VerifyFirebaseIdToken } from "./firebase";

// Firebase sign-in end to end, offline: firebase-admin verifies tokens against a real HTTP peer
// speaking the Auth emulator's protocol on 127.0.0.1, found through FIREBASE_AUTH_EMULATOR_HOST.

const PROJECT_ID = "gantry-test";
const API_KEY = "test-api-key";
const db = testDb();
let peer: FirebaseEmulator;
let verifyFirebaseIdToken: typeof VerifyFirebaseIdToken;

beforeAll(async () => {
  peer = await startFirebaseEmulator({ projectId: PROJECT_ID });
  // env() caches settings on first call, and firebase-admin fixes the emulator URL when it first
  // builds its Auth: both must see the peer, so set these before loading the module under test.
  process.env.FIREBASE_PROJECT_ID = PROJECT_ID;
  process.env.FIREBASE_API_KEY = API_KEY;
  process.env.FIREBASE_AUTH_EMULATOR_HOST = peer.host;
  ({ verifyFirebaseIdToken } = await import("./firebase"));
  const { env } = await import("../env");
  if (env().FIREBASE_AUTH_EMULATOR_HOST !== peer.host) {
    throw new Error("Settings were read before the Firebase emulator peer started; something imported above calls env() at load time");
  }
});
afterAll(() => peer.stop());

const newEmail = () => `fb-${crypto.randomBytes(5).toString("hex")}@example.test`;
const PASSWORD = "correct horse battery";

/** What the browser does: email and password to the emulator, an ID token back. */
async function passwordSignInAtPeer(email: string, password = PASSWORD): Promise<string> {
  const res = await fetch(`http://${peer.host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=${API_KEY}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password, returnSecureToken: true }),
  });
  const body = (await res.json()) as { idToken?: string; error?: { message: string } };
  if (!res.ok || !body.idToken) throw new Error(`The emulator refused the sign-in: ${body.error?.message}`);
  return body.idToken;
}

/** What the server does with the token: verify it, then map it to a Gantry user. */
async function signInWithToken(idToken: string) {
  return signInWithFirebaseIdentity(db, await verifyFirebaseIdToken(idToken), { allowSignup: true });
}

const refused = (code: string, message: string | RegExp) => ({ code, message: typeof message === "string" ? message : expect.stringMatching(message) });

describe("Firebase sign-in", () => {
  it("verifies a token from an email sign-in and gives a new user an organisation they own", async () => {
    const email = newEmail();
    const { uid } = peer.addUser({ email, password: PASSWORD, emailVerified: true, displayName: "Ada Lovelace" });

    const idToken = await passwordSignInAtPeer(email);
    expect(await verifyFirebaseIdToken(idToken)).toEqual({ uid, email, emailVerified: true, name: "Ada Lovelace" });

    const session = await signInWithToken(idToken);
    expect(session).toMatchObject({ email, name: "Ada Lovelace" });
    const user = await db.user.findUniqueOrThrow({ where: { id: session.id }, include: { memberships: { include: { org: true } } } });
    expect(user.firebaseUid).toBe(uid);
    expect(user.passwordHash).toBeNull();
    expect(user.memberships).toHaveLength(1);
    expect(user.memberships[0]).toMatchObject({ role: "owner", org: { name: "Ada Lovelace's lab" } });
    expect(user.lastOrgId).toBe(user.memberships[0].orgId);
    const audit = await db.auditEvent.findMany({ where: { actorId: user.id }, orderBy: { id: "asc" } });
    expect(audit.map((a) => a.action)).toEqual(["auth.sign_up", "auth.sign_in"]);
    expect(audit[1]).toMatchObject({ orgId: user.lastOrgId, target: email, data: { method: "firebase" } });
  });

  it("signs the same Firebase account in again as the same user", async () => {
    const email = newEmail();
    peer.addUser({ email, password: PASSWORD });
    const first = await signInWithToken(await passwordSignInAtPeer(email));
    const second = await signInWithToken(await passwordSignInAtPeer(email));

    expect(second.id).toBe(first.id);
    expect(await db.user.count({ where: { email } })).toBe(1);
    expect(await db.membership.count({ where: { userId: first.id } })).toBe(1);
    expect(await db.auditEvent.count({ where: { actorId: first.id, action: "auth.sign_in" } })).toBe(2);
  });

  it("refuses a token minted for another Firebase project", async () => {
    const { uid } = peer.addUser({ email: newEmail(), password: PASSWORD, emailVerified: true });
    const token = peer.mintIdToken(uid, { aud: "someone-elses-project" });
    await expect(verifyFirebaseIdToken(token)).rejects.toMatchObject(refused("UNAUTHORIZED", "The Firebase sign-in token is not valid for this Gantry; sign in again"));
    const wrongIssuer = peer.mintIdToken(uid, { iss: "https://securetoken.google.com/someone-elses-project" });
    await expect(verifyFirebaseIdToken(wrongIssuer)).rejects.toMatchObject(refused("UNAUTHORIZED", "The Firebase sign-in token is not valid for this Gantry; sign in again"));
    // The correctly addressed token from the same account passes, so the refusal was the audience.
    await expect(verifyFirebaseIdToken(peer.mintIdToken(uid))).resolves.toMatchObject({ uid });
  });

  it("refuses an expired token and says it expired", async () => {
    const { uid } = peer.addUser({ email: newEmail(), password: PASSWORD, emailVerified: true });
    const now = Math.floor(Date.now() / 1000);
    const token = peer.mintIdToken(uid, { iat: now - 7200, exp: now - 3600 });
    await expect(verifyFirebaseIdToken(token)).rejects.toMatchObject(refused("UNAUTHORIZED", "The Firebase sign-in token has expired; sign in again"));
  });

  it("refuses malformed tokens before asking Firebase", async () => {
    const valid = peer.mintIdToken(peer.addUser({ email: newEmail(), password: PASSWORD }).uid);
    for (const token of ["garbage", "", "only.two", "x".repeat(10_000), `${valid}${"a".repeat(10_000)}`]) {
      await expect(verifyFirebaseIdToken(token), JSON.stringify(token.slice(0, 20))).rejects.toMatchObject(refused("UNAUTHORIZED", "The Firebase sign-in token is malformed; sign in again"));
    }
    // Three segments that are not a JWT, and a real token with a forged signature.
    for (const token of ["not.a.jwt", `${valid}c2lnbmF0dXJl`]) {
      await expect(verifyFirebaseIdToken(token), token.slice(0, 20)).rejects.toMatchObject(refused("UNAUTHORIZED", "The Firebase sign-in token is not valid for this Gantry; sign in again"));
    }
  });

  it("refuses a token of an account disabled after it signed in", async () => {
    const email = newEmail();
    const { uid } = peer.addUser({ email, password: PASSWORD, emailVerified: true });
    const idToken = await passwordSignInAtPeer(email);
    peer.disableUser(uid);
    await expect(verifyFirebaseIdToken(idToken)).rejects.toMatchObject(refused("UNAUTHORIZED", "The Firebase sign-in token belongs to a disabled account; sign in again"));
    await expect(passwordSignInAtPeer(email)).rejects.toThrow("USER_DISABLED");
    expect(await db.user.count({ where: { email } })).toBe(0);
  });

  it("does not link a password account, even when Firebase has verified the email", async () => {
    const email = newEmail();
    const existing = await signUp(db, { input: { email, name: "Grace Hopper", password: "a long enough password" }, allowSignup: true });
    peer.addUser({ email: email.toUpperCase(), password: PASSWORD, emailVerified: true });

    await expect(signInWithToken(await passwordSignInAtPeer(email))).rejects.toMatchObject(
      refused("CONFLICT", `An account for ${email} already exists with a password; sign in with your password`),
    );
    const user = await db.user.findUniqueOrThrow({ where: { id: existing.id } });
    expect(user.firebaseUid).toBeNull();
    expect(await db.user.count({ where: { email } })).toBe(1);
  });

  it("refuses to link an existing password account when the email is not verified", async () => {
    const email = newEmail();
    const existing = await signUp(db, { input: { email, name: "Mallory", password: "a long enough password" }, allowSignup: true });
    peer.addUser({ email, password: PASSWORD, emailVerified: false });

    await expect(signInWithToken(await passwordSignInAtPeer(email))).rejects.toMatchObject(
      refused("CONFLICT", `An account for ${email} already exists; verify this email with Firebase, or sign in with your password`),
    );
    const user = await db.user.findUniqueOrThrow({ where: { id: existing.id } });
    expect(user.firebaseUid).toBeNull();
    expect(await db.auditEvent.count({ where: { actorId: existing.id, action: "auth.sign_in" } })).toBe(0);
  });

  it("refuses to re-link an account already linked to a different Firebase account", async () => {
    const email = newEmail();
    const first = await signInWithFirebaseIdentity(db, { uid: `uid-${crypto.randomUUID()}`, email, emailVerified: true }, { allowSignup: true });
    const linkedUid = (await db.user.findUniqueOrThrow({ where: { id: first.id } })).firebaseUid;
    await expect(signInWithFirebaseIdentity(db, { uid: `uid-${crypto.randomUUID()}`, email, emailVerified: true }, { allowSignup: true })).rejects.toMatchObject(
      refused("CONFLICT", /linked to a different Firebase account/),
    );
    expect((await db.user.findUniqueOrThrow({ where: { id: first.id } })).firebaseUid).toBe(linkedUid);
  });

  it("makes one user when the same new Firebase account signs in twice at once", async () => {
    const email = newEmail();
    peer.addUser({ email, password: PASSWORD, emailVerified: false });
    const identity = await verifyFirebaseIdToken(await passwordSignInAtPeer(email));
    const [a, b] = await Promise.all([
      signInWithFirebaseIdentity(db, identity, { allowSignup: true }),
      signInWithFirebaseIdentity(db, identity, { allowSignup: true }),
    ]);
    expect(b.id).toBe(a.id);
    expect(await db.user.count({ where: { email } })).toBe(1);
  });

  it("accepts tokens the Firebase JS SDK gets from the peer, fresh and refreshed", async () => {
    const { initializeApp, deleteApp } = await import("firebase/app");
    const { getAuth, connectAuthEmulator, signInWithEmailAndPassword } = await import("firebase/auth");
    const email = newEmail();
    const { uid } = peer.addUser({ email, password: PASSWORD, emailVerified: true });
    const app = initializeApp({ apiKey: API_KEY, projectId: PROJECT_ID, authDomain: `${PROJECT_ID}.firebaseapp.com` }, `sdk-${uid}`);
    try {
      const auth = getAuth(app);
      connectAuthEmulator(auth, `http://${peer.host}`, { disableWarnings: true });
      const cred = await signInWithEmailAndPassword(auth, email, PASSWORD);
      expect(cred.user).toMatchObject({ uid, email, emailVerified: true, isAnonymous: false });
      const first = await signInWithToken(await cred.user.getIdToken());
      const refreshed = await cred.user.getIdToken(true);
      const second = await signInWithToken(refreshed);
      expect(second.id).toBe(first.id);
    } finally {
      await deleteApp(app);
    }
  });

  it("answers a browser's CORS preflight the way the emulator does", async () => {
    const res = await fetch(`http://${peer.host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=${API_KEY}`, {
      method: "OPTIONS",
      headers: { Origin: "http://localhost:3000", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-client-version,x-firebase-gmpid" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://localhost:3000");
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    expect(res.headers.get("access-control-allow-headers")).toBe("content-type,x-client-version,x-firebase-gmpid");
  });

  // Last: it stops the peer and starts a new one on the same port.
  it("says Firebase could not be reached, rather than blaming the token, when the emulator is down", async () => {
    const { uid } = peer.addUser({ email: newEmail(), password: PASSWORD, emailVerified: true });
    const token = peer.mintIdToken(uid);
    const port = Number(peer.host.split(":")[1]);
    await peer.stop();
    try {
      await expect(verifyFirebaseIdToken(token)).rejects.toMatchObject(
        refused("INTERNAL", "Gantry could not check the sign-in with Firebase; try again in a moment, and tell an admin if it keeps failing"),
      );
    } finally {
      peer = await startFirebaseEmulator({ projectId: PROJECT_ID, port });
    }
  });
});
