"use client";

import { useMutation } from "@tanstack/react-query";
import { signOut } from "next-auth/react";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { TextField } from "@/components/ui/field";
import { errorMessage, useTRPC } from "@/components/trpc";

export function AccountSettings() {
  const trpc = useTRPC();
  const changePassword = useMutation(trpc.auth.changePassword.mutationOptions());
  const signOutEverywhere = useMutation(trpc.auth.signOutEverywhere.mutationOptions({ onSuccess: () => signOut({ callbackUrl: "/sign-in" }) }));
  const [isConfirming, setConfirming] = useState(false);

  const onChangePassword = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const data = new FormData(form);
    changePassword.mutate(
      { currentPassword: String(data.get("current")), newPassword: String(data.get("new")) },
      { onSuccess: () => form.reset() },
    );
  };

  return (
    <div className="space-y-6">
      <Card>
        <CardHeader title="Change password" description="Every other browser signed in as you is signed out; this one stays signed in." />
        <CardBody>
          <form onSubmit={onChangePassword} className="space-y-4">
            <div className="grid gap-4 sm:grid-cols-2">
              <TextField label="Current password" name="current" type="password" autoComplete="current-password" required />
              <TextField label="New password" name="new" type="password" autoComplete="new-password" required minLength={12} hint="At least 12 characters; a few uncommon words make a strong password" />
            </div>
            {changePassword.error && <Alert>{errorMessage(changePassword.error)}</Alert>}
            {changePassword.data && (
              <Alert tone="green">
                Password changed.{" "}
                {changePassword.data.endedSessions === 0 ? "You were signed in nowhere else." : `${changePassword.data.endedSessions} other session${changePassword.data.endedSessions === 1 ? " was" : "s were"} signed out.`}
              </Alert>
            )}
            <Button type="submit" disabled={changePassword.isPending}>{changePassword.isPending ? "Changing…" : "Change password"}</Button>
          </form>
        </CardBody>
      </Card>
      <Card>
        <CardHeader title="Sign out everywhere" description="Ends every session of yours — other browsers, other computers, and this one. API tokens are not affected; revoke them under API tokens." />
        <CardBody className="flex flex-wrap items-center gap-3">
          {isConfirming ? (
            <>
              <Button variant="danger" onClick={() => signOutEverywhere.mutate()} disabled={signOutEverywhere.isPending}>Yes, sign me out everywhere</Button>
              <Button variant="ghost" onClick={() => setConfirming(false)}>Cancel</Button>
            </>
          ) : (
            <Button variant="secondary" onClick={() => setConfirming(true)}>Sign out everywhere…</Button>
          )}
          {signOutEverywhere.error && <Alert className="w-full">{errorMessage(signOutEverywhere.error)}</Alert>}
        </CardBody>
      </Card>
    </div>
  );
}
