"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { signIn } from "next-auth/react";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody } from "@/components/ui/card";
import { TextField } from "@/components/ui/field";
import { useTRPC } from "@/components/trpc";
import { FirebaseSignIn } from "./firebase-sign-in";
import { safeCallback } from "./safe-callback";

/**
 * next-auth sends people here with `?error=<code>`. Only its codes are shown, in our words: the
 * URL is anyone's to write, so its text is never put on the page.
 */
const errorCodes: Record<string, string> = {
  SessionRequired: "Sign in to continue",
  CredentialsSignin: "Wrong email or password",
  AccessDenied: "That account may not sign in here",
  Callback: "Signing in did not finish; try again",
  Configuration: "Signing in is not set up correctly on this server; tell its administrator",
  Default: "Signing in did not work; try again",
};

function describeErrorCode(code: string | null): string | null {
  return code && Object.hasOwn(errorCodes, code) ? errorCodes[code] : null;
}

export function SignInForm() {
  const trpc = useTRPC();
  const router = useRouter();
  const params = useSearchParams();
  const callbackUrl = safeCallback(params.get("callbackUrl"));
  const providers = useQuery(trpc.auth.providers.queryOptions());
  const [error, setError] = useState<string | null>(() => describeErrorCode(params.get("error")));
  const [isBusy, setBusy] = useState(false);

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    const result = await signIn("password", { email: form.get("email"), password: form.get("password"), redirect: false });
    setBusy(false);
    if (!result || result.error) return setError(result?.error && result.error !== "CredentialsSignin" ? result.error : "Wrong email or password");
    router.push(callbackUrl);
    router.refresh();
  }

  return (
    <Card>
      <CardBody className="space-y-5 py-6">
        <h1 className="text-lg font-semibold">Sign in</h1>
        {error && <Alert>{error}</Alert>}
        <form onSubmit={onSubmit} className="space-y-4">
          <TextField label="Email" name="email" type="email" autoComplete="email" required />
          <TextField label="Password" name="password" type="password" autoComplete="current-password" required />
          <Button type="submit" className="w-full" disabled={isBusy}>{isBusy ? "Signing in…" : "Sign in"}</Button>
        </form>
        {providers.data?.firebase && <FirebaseSignIn config={providers.data.firebase} callbackUrl={callbackUrl} onError={setError} />}
        {providers.data?.allowSignup !== false && (
          <p className="text-center text-sm text-zinc-500">
            New here? <Link className="font-medium text-brand-600 hover:underline" href={`/sign-up${callbackUrl !== "/" ? `?callbackUrl=${encodeURIComponent(callbackUrl)}` : ""}`}>Create an account</Link>
          </p>
        )}
      </CardBody>
    </Card>
  );
}
