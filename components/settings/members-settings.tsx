"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { CopyButton } from "@/components/ui/copy-button";
import { SelectField } from "@/components/ui/field";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { roles, type Role } from "@/server/auth/roles";
import { useRole } from "./use-role";

/** What a role may do, said when someone's role is about to change. */
const roleHelp: Record<Role, string> = {
  viewer: "Viewers see everything and change nothing.",
  operator: "Operators also upload, train, deploy and run the hardware.",
  admin: "Admins also manage members, devices, agents and training hosts, delete models and datasets, and read the audit log.",
  owner: "Owners can do everything, including making and removing admins.",
};

export function MembersSettings() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { can, role: myRole, userId, orgId } = useRole();
  const members = useQuery(trpc.orgs.members.queryOptions());
  const invalidate = () => queryClient.invalidateQueries({ queryKey: trpc.orgs.members.queryKey() });
  const setRole = useMutation(trpc.orgs.setRole.mutationOptions({ onSettled: invalidate }));
  const remove = useMutation(trpc.orgs.removeMember.mutationOptions({ onSettled: invalidate }));
  const isAdmin = can("admin");
  const error = setRole.error ?? remove.error;

  return (
    <div className="space-y-6">
      <Card>
        <CardHeader title="Members" description="Owners manage everything; admins manage members, devices and credentials; operators run jobs and rollouts; viewers read." />
        {orgId && (
          <p className="px-5 pt-3 text-xs text-zinc-500">
            Organisation id <code data-testid="org-id" className="font-mono">{orgId}</code> — earlier edge clients rsync episodes into <code className="font-mono">EDGE_UPLOAD_DIR/{orgId}/&lt;repo_id&gt;/</code>.
          </p>
        )}
        {error && <Alert className="mx-5 mt-4">{errorMessage(error)}</Alert>}
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {members.data?.map((m) => {
            const canEdit = isAdmin && m.userId !== userId && (myRole === "owner" || (m.role !== "owner" && m.role !== "admin"));
            return (
              <li key={m.userId} className="flex flex-wrap items-center gap-3 px-5 py-3" data-member={m.email}>
                <div className="min-w-0 flex-1">
                  <p className="font-medium">{m.name}{m.userId === userId && <span className="ml-2 text-xs text-zinc-500">(you)</span>}</p>
                  <p className="truncate text-sm text-zinc-500">{m.email} · joined <RelativeTime date={m.joinedAt} /></p>
                </div>
                {canEdit ? (
                  <>
                    <label className="sr-only" htmlFor={`role-${m.userId}`}>Role of {m.name}</label>
                    <select
                      id={`role-${m.userId}`}
                      value={m.role}
                      onChange={(e) => {
                        const role = e.target.value as Role;
                        if (confirm(`Make ${m.name} ${/^[aeiou]/.test(role) ? "an" : "a"} ${role}? ${roleHelp[role]}`)) setRole.mutate({ userId: m.userId, role });
                      }}
                      className="h-8 rounded-md border border-zinc-300 bg-white px-2 text-sm dark:border-zinc-700 dark:bg-zinc-900"
                    >
                      {roles.filter((r) => myRole === "owner" || (r !== "owner" && r !== "admin")).map((r) => <option key={r} value={r}>{r}</option>)}
                    </select>
                    <Button size="sm" variant="ghost" onClick={() => confirm(`Remove ${m.name} from this organisation?`) && remove.mutate({ userId: m.userId })}>Remove</Button>
                  </>
                ) : (
                  <Badge>{m.role}</Badge>
                )}
              </li>
            );
          })}
        </ul>
      </Card>
      {isAdmin && <Invites />}
    </div>
  );
}

function Invites() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { role: myRole } = useRole();
  const invites = useQuery(trpc.invites.list.queryOptions());
  const invalidate = () => queryClient.invalidateQueries({ queryKey: trpc.invites.list.queryKey() });
  const create = useMutation(trpc.invites.create.mutationOptions({ onSuccess: invalidate }));
  const revoke = useMutation(trpc.invites.revoke.mutationOptions({ onSuccess: invalidate }));
  const [role, setRole] = useState<Exclude<Role, "owner">>("viewer");

  return (
    <Card>
      <CardHeader title="Invite people" description="Make a link and send it however you like; it works once and expires in 7 days." />
      <CardBody className="space-y-4">
        <div className="flex flex-wrap items-end gap-3">
          <SelectField label="Role" className="w-44" value={role} onChange={(e) => setRole(e.target.value as Exclude<Role, "owner">)} options={roles.filter((r) => r !== "owner" && (myRole === "owner" || r !== "admin")).map((r) => ({ value: r, label: r }))} />
          <Button onClick={() => create.mutate({ role, expiresInDays: 7 })} disabled={create.isPending}>Create invite link</Button>
        </div>
        {create.error && <Alert>{errorMessage(create.error)}</Alert>}
        {create.data && create.variables && (
          <div className="space-y-2 rounded-md border border-zinc-200 p-3 dark:border-zinc-800">
            {/* The role the link was made for, not the one selected since. */}
            <p className="text-sm">Invite link ({create.variables.role}); it is shown only now:</p>
            <div className="flex gap-2">
              <input readOnly aria-label="Invite link" value={create.data.url} className="h-9 flex-1 rounded-md border border-zinc-300 bg-zinc-50 px-2 font-mono text-xs dark:border-zinc-700 dark:bg-zinc-950" onFocus={(e) => e.target.select()} />
              <CopyButton text={create.data.url} label="Copy the invitation" selectTarget={() => document.querySelector<HTMLInputElement>('input[aria-label="Invite link"]')} />
            </div>
          </div>
        )}
        {revoke.error && <Alert>{`The invite was not revoked: ${errorMessage(revoke.error)}`}</Alert>}
        {invites.data && invites.data.length > 0 && (
          <ul className="divide-y divide-zinc-100 text-sm dark:divide-zinc-800">
            {invites.data.map((i) => (
              <li key={i.id} className="flex items-center justify-between py-2">
                <span><Badge>{i.role}</Badge> <span className="text-zinc-500">open invite, expires {i.expiresAt.toLocaleDateString()}</span></span>
                <Button size="sm" variant="ghost" disabled={revoke.isPending} onClick={() => revoke.mutate({ inviteId: i.id })}>Revoke</Button>
              </li>
            ))}
          </ul>
        )}
      </CardBody>
    </Card>
  );
}
