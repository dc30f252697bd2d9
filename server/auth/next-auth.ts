import type { NextAuthOptions } from "next-auth";
import CredentialsProvider from "next-auth/providers/credentials";
import { db } from "../db";
import { env } from "../env";
import { isAppError } from "../errors";
import { signInInput } from "./auth.schemas";
import { signInWithFirebaseIdentity, signInWithPassword } from "./accounts.service";
import { verifyFirebaseIdToken } from "./firebase";
import { clientAddress } from "./rate-limit";

// next-auth v4 with JWT sessions: the cookie holds only the user id (sub); organisation and
// role are read from the database on every request, so a role change applies at once.

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

function addressOf(req: { headers?: Record<string, unknown> } | undefined): string | undefined {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req?.headers ?? {})) if (typeof v === "string") headers.set(k, v);
  return clientAddress(headers);
}

export function authOptions(): NextAuthOptions {
  const settings = env();
  return {
    secret: settings.AUTH_SECRET,
    session: { strategy: "jwt", maxAge: 30 * 24 * 3600 },
    pages: { signIn: "/sign-in", error: "/sign-in" },
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
    callbacks: {
      jwt({ token, user }) {
        if (user) token.sub = user.id;
        return token;
      },
      session({ session, token }) {
        return { ...session, user: { ...session.user, id: token.sub } };
      },
    },
  };
}
