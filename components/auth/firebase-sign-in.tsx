"use client";

import { useRouter } from "next/navigation";
import { signIn } from "next-auth/react";
import { useState, type FormEvent } from "react";
import { Button } from "@/components/ui/button";
import { TextField } from "@/components/ui/field";

interface FirebaseConfig {
  apiKey: string;
  projectId: string;
  authDomain: string | null;
  emulatorHost: string | null;
}

/**
 * Signs in with the Firebase JS SDK in the browser, then hands the ID token to the server,
 * which verifies it with firebase-admin and maps it to a Gantry user by uid.
 */
export function FirebaseSignIn({ config, callbackUrl, onError }: { config: FirebaseConfig; callbackUrl: string; onError: (m: string | null) => void }) {
  const router = useRouter();
  const [isBusy, setBusy] = useState(false);

  async function firebaseAuth() {
    const { initializeApp, getApps } = await import("firebase/app");
    const { getAuth, connectAuthEmulator } = await import("firebase/auth");
    const app = getApps().find((a) => a.name === "gantry") ?? initializeApp({ apiKey: config.apiKey, projectId: config.projectId, authDomain: config.authDomain ?? `${config.projectId}.firebaseapp.com` }, "gantry");
    const auth = getAuth(app);
    if (config.emulatorHost && !(auth as unknown as { emulatorConfig?: unknown }).emulatorConfig) {
      connectAuthEmulator(auth, `http://${config.emulatorHost}`, { disableWarnings: true });
    }
    return auth;
  }

  async function finish(idToken: string) {
    const result = await signIn("firebase", { idToken, redirect: false });
    if (!result || result.error) throw new Error(result?.error ?? "Firebase sign-in was refused");
    router.push(callbackUrl);
    router.refresh();
  }

  async function run(step: () => Promise<string>) {
    setBusy(true);
    onError(null);
    try {
      await finish(await step());
    } catch (error) {
      const code = (error as { code?: string }).code;
      onError(code === "auth/invalid-credential" || code === "auth/wrong-password" || code === "auth/user-not-found" ? "Firebase did not accept that email and password" : (error as Error).message);
    } finally {
      setBusy(false);
    }
  }

  async function onEmail(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    await run(async () => {
      const { signInWithEmailAndPassword } = await import("firebase/auth");
      const cred = await signInWithEmailAndPassword(await firebaseAuth(), String(form.get("email")), String(form.get("password")));
      return cred.user.getIdToken();
    });
  }

  async function onGoogle() {
    await run(async () => {
      const { GoogleAuthProvider, signInWithPopup } = await import("firebase/auth");
      const cred = await signInWithPopup(await firebaseAuth(), new GoogleAuthProvider());
      return cred.user.getIdToken();
    });
  }

  return (
    <section aria-labelledby="firebase-heading" className="space-y-3 border-t border-zinc-200 pt-5 dark:border-zinc-800">
      <h2 id="firebase-heading" className="text-sm font-medium text-zinc-600 dark:text-zinc-400">Or sign in with Firebase</h2>
      <Button variant="secondary" className="w-full" onClick={onGoogle} disabled={isBusy}>Continue with Google</Button>
      <details className="text-sm">
        <summary className="cursor-pointer text-zinc-500">Firebase email and password</summary>
        <form onSubmit={onEmail} className="mt-3 space-y-3" aria-label="Firebase email sign-in">
          <TextField label="Firebase email" name="email" type="email" required />
          <TextField label="Firebase password" name="password" type="password" required />
          <Button type="submit" variant="secondary" className="w-full" disabled={isBusy}>{isBusy ? "Signing in…" : "Sign in with Firebase"}</Button>
        </form>
      </details>
    </section>
  );
}
