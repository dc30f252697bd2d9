"use client";

import { useMutation, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { signIn } from "next-auth/react";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody } from "@/components/ui/card";
import { TextField } from "@/components/ui/field";
import { errorMessage, useTRPC } from "@/components/trpc";
import { safeCallback } from "./safe-callback";

export function SignUpForm() {
  const trpc = useTRPC();
  const router = useRouter();
  const params = useSearchParams();
  const invite = params.get("invite") ?? undefined;
  const callbackUrl = safeCallback(params.get("callbackUrl"));
  const invitation = useQuery({ ...trpc.invites.describe.queryOptions({ token: invite ?? "" }), enabled: Boolean(invite) });
  const signUp = useMutation(trpc.auth.signUp.mutationOptions());
  const [error, setError] = useState<string | null>(null);
  // From the first click until the new account is signed in and on its way: a second click would
  // try to make the same account again.
  const [isBusy, setBusy] = useState(false);

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (isBusy) return;
    setError(null);
    setBusy(true);
    const form = new FormData(e.currentTarget);
    const email = String(form.get("email"));
    const password = String(form.get("password"));
    try {
      await signUp.mutateAsync({ name: String(form.get("name")), email, password, inviteToken: invite });
    } catch (err) {
      setBusy(false);
      return setError(errorMessage(err));
    }
    const result = await signIn("password", { email, password, redirect: false }).catch(() => null);
    if (!result || result.error) {
      setBusy(false);
      return setError("Your account was created, but signing in failed; try signing in");
    }
    router.push(callbackUrl);
    router.refresh();
  }

  return (
    <Card>
      <CardBody className="space-y-5 py-6">
        <h1 className="text-lg font-semibold">Create your account</h1>
        {invitation.data && <Alert tone="blue">You are joining <strong>{invitation.data.orgName}</strong> as {invitation.data.role}.</Alert>}
        {invitation.error && <Alert>{errorMessage(invitation.error)}</Alert>}
        {error && <Alert>{error}</Alert>}
        <form onSubmit={onSubmit} className="space-y-4">
          <TextField label="Name" name="name" autoComplete="name" required maxLength={100} />
          <TextField label="Email" name="email" type="email" autoComplete="email" required />
          <TextField label="Password" name="password" type="password" autoComplete="new-password" required minLength={12} hint="At least 12 characters; a few uncommon words make a strong password" />
          <Button type="submit" className="w-full" disabled={isBusy}>{signUp.isPending ? "Creating account…" : isBusy ? "Signing in…" : "Create account"}</Button>
        </form>
        <p className="text-center text-sm text-zinc-500">
          Already have an account? <Link className="font-medium text-brand-600 hover:underline" href={`/sign-in${callbackUrl !== "/" ? `?callbackUrl=${encodeURIComponent(callbackUrl)}` : ""}`}>Sign in</Link>
        </p>
      </CardBody>
    </Card>
  );
}
