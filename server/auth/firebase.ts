import { getApps, initializeApp, type App } from "firebase-admin/app";
import { getAuth } from "firebase-admin/auth";
import { AppError } from "../errors";
import { env } from "../env";

// firebase-admin reads FIREBASE_AUTH_EMULATOR_HOST from the environment itself: with it set,
// tokens are checked against the emulator (audience, issuer, expiry; no signature).

function firebaseApp(projectId: string): App {
  const name = `gantry-${projectId}`;
  return getApps().find((a) => a.name === name) ?? initializeApp({ projectId }, name);
}

export interface FirebaseIdentity {
  uid: string;
  email?: string;
  emailVerified: boolean;
  name?: string;
}

export async function verifyFirebaseIdToken(idToken: string): Promise<FirebaseIdentity> {
  const settings = env();
  if (!settings.isFirebaseEnabled || !settings.FIREBASE_PROJECT_ID) throw new AppError("BAD_REQUEST", "Firebase sign-in is not configured on this Gantry");
  if (typeof idToken !== "string" || idToken.length > 8192 || idToken.split(".").length !== 3) {
    throw new AppError("UNAUTHORIZED", "The Firebase sign-in token is malformed; sign in again");
  }
  try {
    // checkRevoked asks Firebase (or its emulator) that the account still exists and is enabled.
    const decoded = await getAuth(firebaseApp(settings.FIREBASE_PROJECT_ID)).verifyIdToken(idToken, true);
    return { uid: decoded.uid, email: decoded.email, emailVerified: decoded.email_verified === true, name: decoded.name as string | undefined };
  } catch (error) {
    throw explainRefusal(error);
  }
}

// What firebase-admin's error codes say about the token. Anything else (no network, a bad
// credential, Firebase failing) is Gantry's problem, not the user's, and must not read as one.
const tokenProblems: Record<string, string> = {
  "auth/id-token-expired": "has expired",
  "auth/id-token-revoked": "was revoked",
  "auth/user-disabled": "belongs to a disabled account",
  "auth/user-not-found": "belongs to a Firebase account that no longer exists",
  "auth/argument-error": "is not valid for this Gantry",
  "auth/invalid-id-token": "is not valid for this Gantry",
};

function explainRefusal(error: unknown): AppError {
  const code = (error as { code?: unknown }).code;
  const reason = typeof code === "string" ? tokenProblems[code] : undefined;
  if (reason) return new AppError("UNAUTHORIZED", `The Firebase sign-in token ${reason}; sign in again`, { cause: error });
  return new AppError("INTERNAL", "Gantry could not check the sign-in with Firebase; try again in a moment, and tell an admin if it keeps failing", { cause: error });
}
