import type { NextAuthOptions } from "next-auth";
import CredentialsProvider from "next-auth/providers/credentials";
import { db } from "../db";
import { env } from "../env";
import { isAppError } from "../errors";
import { signInInput } from "./auth.schemas";
import { signInWithFirebaseIdentity, signInWithPassword } from "./accounts.service";
import { verifyFirebaseIdToken } from "./firebase";
import { clientAddress } from "./rate-limit";
import { endSession, findSessionUser, SESSION_MAX_AGE_S, startSession } from "./sessions.service";

// next-auth v4 with JWT sessions: the cookie holds only the user id (sub) and the session it
// names (sid, an AuthSession row); the session, organisation and role are read from the
// database on every request, so a sign-out or a role change applies at once.

async function authorizeOrExplain<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    // next-auth passes an Error's message to the sign-in page as `error`.
    if (isAppError(error)) {
      if (error.status >= 500) console.error(error.cause ?? error);
      throw new Error(error.message);
    }
    console.error(error);
    throw new Error("Sign-in failed on the server; try again, and check the server log if it keeps failing");
  }
}

const SESSION_ENDED = "This session has ended; sign in again";

function addressOf(req: { headers?: Record<string, unknown> } | undefined): string | undefined {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req?.headers ?? {})) if (typeof v === "string") headers.set(k, v);
  return clientAddress(headers);
}

export function authOptions(): NextAuthOptions {
  const settings = env();
  return {
    secret: settings.AUTH_SECRET,
    session: { strategy: "jwt", maxAge: SESSION_MAX_AGE_S },
    pages: { signIn: "/sign-in", error: "/sign-in" },
    logger: {
      error(code, metadata) {
        // A browser still holding an ended session is no fault: next-auth clears its cookie.
        if (code === "JWT_SESSION_ERROR" && (metadata as { message?: unknown } | undefined)?.message === SESSION_ENDED) return;
        console.error(`[next-auth][error][${code}]`, metadata);
      },
    },
    providers: [
      CredentialsProvider({
        id: "password",
        name: "Email and password",
        credentials: { email: { label: "Email", type: "email" }, password: { label: "Password", type: "password" } },
        authorize: (credentials, req) =>
          authorizeOrExplain(async () => {
            const parsed = signInInput.safeParse(credentials);
            if (!parsed.success) throw new Error("Enter your email address and password");
            return signInWithPassword(db(), parsed.data, { address: addressOf(req) });
          }),
      }),
      CredentialsProvider({
        id: "firebase",
        name: "Firebase",
        credentials: { idToken: { label: "ID token", type: "text" } },
        authorize: (credentials) =>
          authorizeOrExplain(async () => {
            const identity = await verifyFirebaseIdToken(String(credentials?.idToken ?? ""));
            return signInWithFirebaseIdentity(db(), identity, { allowSignup: settings.ALLOW_SIGNUP });
          }),
      }),
    ],
    events: {
      // Signing out deletes the session, so a copy of the old cookie is worth nothing.
      async signOut({ token }) {
        if (typeof token?.sid === "string") await endSession(db(), token.sid);
      },
    },
    callbacks: {
      async jwt({ token, user }) {
        if (user) return { ...token, sub: user.id, sid: (await startSession(db(), user.id)).id };
        // next-auth's own session endpoint: a session ended elsewhere (sign out everywhere, a
        // password change) signs this browser out too; next-auth clears the cookie on a throw.
        const claims = typeof token.sub === "string" && typeof token.sid === "string" ? { userId: token.sub, sessionId: token.sid } : null;
        if (!claims || !(await findSessionUser(db(), claims))) throw new Error(SESSION_ENDED);
        return token;
      },
      session({ session, token }) {
        return { ...session, user: { ...session.user, id: token.sub } };
      },
    },
  };
}
