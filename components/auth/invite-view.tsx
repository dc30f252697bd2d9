"use client";

import { useMutation, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useSession } from "next-auth/react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody } from "@/components/ui/card";
import { errorMessage, setTabOrg, useTRPC } from "@/components/trpc";

export function InviteView({ token }: { token: string }) {
  const trpc = useTRPC();
  const session = useSession();
  const invite = useQuery(trpc.invites.describe.queryOptions({ token }));
  const accept = useMutation(
    trpc.invites.accept.mutationOptions({
      // This tab goes on in the organisation just joined, from a fresh start.
      onSuccess: ({ orgId }) => {
        setTabOrg(orgId);
        window.location.assign("/");
      },
    }),
  );
  const here = `/invite/${encodeURIComponent(token)}`;

  return (
    <Card>
      <CardBody className="space-y-5 py-6">
        <h1 className="text-lg font-semibold">Invitation</h1>
        {invite.isLoading && <p className="text-sm text-zinc-500">Checking the invite…</p>}
        {invite.error && <Alert>{errorMessage(invite.error)}</Alert>}
        {invite.data && (
          <>
            <p className="text-sm">
              You have been invited to join <strong>{invite.data.orgName}</strong> as <strong>{invite.data.role}</strong>.
            </p>
            {accept.error && <Alert>{errorMessage(accept.error)}</Alert>}
            {session.status === "authenticated" ? (
              <Button className="w-full" onClick={() => accept.mutate({ token })} disabled={accept.isPending}>
                {accept.isPending ? "Joining…" : `Join ${invite.data.orgName}`}
              </Button>
            ) : session.status === "unauthenticated" ? (
              <div className="space-y-2">
                <Link href={`/sign-up?invite=${encodeURIComponent(token)}`} className="flex h-10 w-full items-center justify-center rounded-md bg-brand-600 text-sm font-medium text-white hover:bg-brand-700">Create an account to join</Link>
                <Link href={`/sign-in?callbackUrl=${encodeURIComponent(here)}`} className="flex h-10 w-full items-center justify-center rounded-md border border-zinc-300 text-sm font-medium hover:bg-zinc-100 dark:border-zinc-700 dark:hover:bg-zinc-800">I have an account: sign in</Link>
              </div>
            ) : null}
          </>
        )}
      </CardBody>
    </Card>
  );
}
