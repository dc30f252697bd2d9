"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { TextField } from "@/components/ui/field";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "./use-role";

export function InstanceSettings() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { can } = useRole();
  const me = useQuery(trpc.auth.me.queryOptions());
  const isInstanceAdmin = me.data?.user.isInstanceAdmin === true;
  const info = useQuery({ ...trpc.system.instance.queryOptions(), enabled: isInstanceAdmin });
  const rename = useMutation(trpc.orgs.rename.mutationOptions({ onSuccess: () => queryClient.invalidateQueries({ queryKey: trpc.auth.me.queryKey() }) }));
  const [name, setName] = useState<string | null>(null);
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    if (name) rename.mutate({ name });
  };
  const rows = info.data ? [
    ["Version", info.data.version],
    ["Node.js", info.data.node],
    ["Host", info.data.host],
    ["Public URL", info.data.publicUrl],
    ["Database", info.data.database],
    ["Blob store", info.data.blobDir],
    ["Firebase sign-in", info.data.firebase ? "enabled" : "off"],
    ["Open sign-up", info.data.signup ? "yes" : "invite only"],
  ] : [];
  return (
    <div className="space-y-6">
      {can("admin") && (
        <Card>
          <CardHeader title="Organisation" />
          <CardBody>
            <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-3">
              <TextField label="Name" className="w-72" value={name ?? me.data?.currentOrg?.name ?? ""} onChange={(e) => setName(e.target.value)} required maxLength={80} />
              <Button type="submit" variant="secondary" disabled={rename.isPending || !name}>Rename</Button>
            </form>
            {rename.error && <Alert className="mt-3">{errorMessage(rename.error)}</Alert>}
          </CardBody>
        </Card>
      )}
      {me.data && !isInstanceAdmin && <Alert tone="blue">Where this instance runs and keeps its data is shown to instance admins: the first account made on it, and the people listed in its INSTANCE_ADMINS setting.</Alert>}
      {isInstanceAdmin && <Card>
        <CardHeader title="This instance" />
        <CardBody>
          <dl className="grid gap-x-6 gap-y-3 text-sm sm:grid-cols-[12rem_1fr]">
            {rows.map(([k, v]) => (
              <div key={k} className="contents">
                <dt className="text-zinc-500">{k}</dt>
                <dd className="break-all font-mono text-xs">{v}</dd>
              </div>
            ))}
          </dl>
        </CardBody>
      </Card>}
    </div>
  );
}
