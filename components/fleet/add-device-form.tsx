"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { CredentialFields, credentialFromForm, type AuthKind } from "@/components/ui/credential-fields";
import { Button } from "@/components/ui/button";
import { TextField } from "@/components/ui/field";
import { errorMessage, useTRPC } from "@/components/trpc";

/** Adds a device; the key or password goes to the server once and is never shown again. */
export function AddDeviceForm({ initialHost, initialPort, onDone }: { initialHost?: string; initialPort?: number; onDone: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [authKind, setAuthKind] = useState<AuthKind>("key");
  const create = useMutation(
    trpc.fleet.createDevice.mutationOptions({
      onSuccess: async () => {
        await queryClient.invalidateQueries({ queryKey: trpc.fleet.devices.queryKey() });
        onDone();
      },
    }),
  );
  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const s = (k: string) => String(f.get(k) ?? "").trim();
    create.mutate({
      name: s("name"),
      host: s("host"),
      port: Number(s("port") || 22),
      username: s("username"),
      credential: credentialFromForm(f, authKind),
      tags: s("tags") ? s("tags").split(/[\s,]+/).filter(Boolean) : [],
      group: s("group") || null,
      ...(s("modelDir") ? { modelDir: s("modelDir") } : {}),
      ...(s("restartCommand") ? { restartCommand: s("restartCommand") } : {}),
      ...(s("healthCommand") ? { healthCommand: s("healthCommand") } : {}),
    });
  };
  return (
    <form onSubmit={onSubmit} className="grid gap-4 sm:grid-cols-3" aria-label="Add device">
      <TextField label="Name" name="name" required maxLength={64} placeholder="jetson-1" />
      <TextField label="Host" name="host" required defaultValue={initialHost} placeholder="192.168.1.20" />
      <TextField label="Port" name="port" type="number" min={1} max={65535} defaultValue={initialPort ?? 22} />
      <TextField label="User" name="username" required placeholder="robot" />
      <CredentialFields authKind={authKind} onAuthKind={setAuthKind} idPrefix="device" />
      <TextField label="Tags" name="tags" placeholder="lab, so101" hint="comma or space separated" />
      <TextField label="Group" name="group" placeholder="bench" />
      <TextField label="Model directory" name="modelDir" placeholder="default from settings (MODEL_DIR)" />
      <TextField label="Restart command" name="restartCommand" placeholder="sudo systemctl restart gantry-policy" className="sm:col-span-2" />
      <TextField label="Health command" name="healthCommand" placeholder="systemctl is-active --quiet gantry-policy" />
      {create.error && <Alert className="sm:col-span-3">{errorMessage(create.error)}</Alert>}
      <div className="flex gap-2 sm:col-span-3">
        <Button type="submit" disabled={create.isPending}>{create.isPending ? "Adding…" : "Add device"}</Button>
        <Button variant="ghost" onClick={onDone}>Cancel</Button>
      </div>
    </form>
  );
}
