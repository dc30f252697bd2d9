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
    const code = (error as { code?: string }).code ?? "";
    const reason = code.includes("expired") ? "has expired" : code.includes("revoked") ? "was revoked" : code.includes("disabled") ? "belongs to a disabled account" : "is not valid for this Gantry";
    throw new AppError("UNAUTHORIZED", `The Firebase sign-in token ${reason}; sign in again`, { cause: error });
  }
}
