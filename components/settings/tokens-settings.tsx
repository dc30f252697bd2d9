"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { CopyButton } from "@/components/ui/copy-button";
import { TextField } from "@/components/ui/field";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { tokenScopeRole, tokenScopes } from "@/server/auth/auth.schemas";
import { EdgeAgentCard } from "./edge-agent-card";
import { useRole } from "./use-role";

const scopeHelp: Record<(typeof tokenScopes)[number], string> = {
  read: "read everything you can see",
  write: "also start and cancel jobs (operator)",
  admin: "also manage members and devices (admin)",
};

export function TokensSettings() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const tokens = useQuery(trpc.tokens.list.queryOptions());
  const invalidate = () => queryClient.invalidateQueries({ queryKey: trpc.tokens.list.queryKey() });
  const create = useMutation(trpc.tokens.create.mutationOptions({ onSuccess: invalidate }));
  const revoke = useMutation(trpc.tokens.revoke.mutationOptions({ onSuccess: invalidate }));
  const [scopes, setScopes] = useState<string[]>(["read"]);
  const { can } = useRole();

  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const days = Number(form.get("expires"));
    create.mutate({ name: String(form.get("name")), scopes: scopes as Array<(typeof tokenScopes)[number]>, expiresInDays: days > 0 ? days : undefined });
  };

  return (
    <div className="space-y-6">
      <Card>
        <CardHeader title="Create an API token" description="For the edge agent, scripts and typed clients: send it as Authorization: Bearer <token>. A token never has more rights than you." />
        <CardBody>
          <form onSubmit={onSubmit} className="space-y-4">
            <div className="grid gap-4 sm:grid-cols-2">
              <TextField label="Name" name="name" required maxLength={80} placeholder="e.g. lab-laptop agent" />
              <TextField label="Expires after (days)" name="expires" type="number" min={0} max={3650} defaultValue={90} hint="0 for never" />
            </div>
            <fieldset>
              <legend className="text-sm font-medium">Scopes</legend>
              <div className="mt-2 flex flex-wrap gap-4">
                {tokenScopes.map((s) => {
                  // A token never has more rights than its maker: scopes above your role are off.
                  const isAllowed = can(tokenScopeRole[s]);
                  return (
                    <label key={s} className="flex items-center gap-2 text-sm">
                      <input type="checkbox" disabled={!isAllowed} checked={isAllowed && scopes.includes(s)} onChange={(e) => setScopes((prev) => (e.target.checked ? [...prev, s] : prev.filter((x) => x !== s)))} />
                      <span className={isAllowed ? undefined : "text-zinc-400"}><strong>{s}</strong> <span className="text-zinc-500">— {isAllowed ? scopeHelp[s] : `needs the ${tokenScopeRole[s]} role`}</span></span>
                    </label>
                  );
                })}
              </div>
            </fieldset>
            {create.error && <Alert>{errorMessage(create.error)}</Alert>}
            <Button type="submit" disabled={create.isPending || scopes.length === 0}>Create token</Button>
          </form>
          {create.data && (
            <div className="mt-4 space-y-2 rounded-md border border-emerald-300 bg-emerald-50 p-3 dark:border-emerald-900 dark:bg-emerald-950/40">
              <p className="text-sm font-medium">Copy this token now: it will not be shown again.</p>
              <div className="flex gap-2">
                <input readOnly aria-label="New API token" value={create.data.token} className="h-9 flex-1 rounded-md border border-zinc-300 bg-white px-2 font-mono text-xs dark:border-zinc-700 dark:bg-zinc-950" onFocus={(e) => e.target.select()} />
                <CopyButton text={create.data.token} label="Copy the token" selectTarget={() => document.querySelector<HTMLInputElement>('input[aria-label="New API token"]')} />
              </div>
            </div>
          )}
        </CardBody>
      </Card>
      <EdgeAgentCard newToken={create.data && { token: create.data.token, canUpload: (create.variables?.scopes ?? []).some((s) => s === "write" || s === "admin") }} />
      <Card>
        <CardHeader title="Tokens" />
        {revoke.error && <Alert className="mx-5 mt-4">{errorMessage(revoke.error)}</Alert>}
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {tokens.data?.length === 0 && <li className="px-5 py-8 text-center text-sm text-zinc-500">No tokens yet.</li>}
          {tokens.data?.map((t) => (
            <li key={t.id} className="flex flex-wrap items-center gap-3 px-5 py-3" data-token={t.name}>
              <div className="min-w-0 flex-1">
                <p className="font-medium">{t.name} <span className="font-mono text-xs text-zinc-400">gty_{t.prefix}_…</span></p>
                <p className="text-sm text-zinc-500">
                  {t.owner} · created <RelativeTime date={t.createdAt} /> · {t.lastUsedAt ? <>used <RelativeTime date={t.lastUsedAt} /></> : "never used"}
                  {t.expiresAt && <> · expires {t.expiresAt.toLocaleDateString()}</>}
                </p>
              </div>
              <div className="flex gap-1">{t.scopes.map((s) => <Badge key={s}>{s}</Badge>)}</div>
              {t.revokedAt ? <Badge tone="red">revoked</Badge> : <Button size="sm" variant="ghost" disabled={revoke.isPending} onClick={() => confirm(`Revoke the token ${t.name}? Every agent and script using it is refused from now on; this cannot be undone.`) && revoke.mutate({ tokenId: t.id })}>Revoke</Button>}
            </li>
          ))}
        </ul>
      </Card>
    </div>
  );
}
