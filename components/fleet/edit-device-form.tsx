"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { SelectField, TextField } from "@/components/ui/field";
import { errorMessage, useTRPC } from "@/components/trpc";
import type { DeviceSummary } from "@/server/fleet/fleet.schemas";

/** Changes a device; the stored key or password is only ever replaced, never shown. */
export function EditDeviceForm({ device, onDone }: { device: DeviceSummary; onDone: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [credentialKind, setCredentialKind] = useState<"keep" | "key" | "password">("keep");
  const update = useMutation(
    trpc.fleet.updateDevice.mutationOptions({
      onSuccess: async () => {
        await queryClient.invalidateQueries({ queryKey: trpc.fleet.device.queryKey({ deviceId: device.id }) });
        onDone();
      },
    }),
  );
  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const s = (k: string) => String(f.get(k) ?? "").trim();
    update.mutate({
      deviceId: device.id,
      name: s("name"),
      host: s("host"),
      port: Number(s("port") || 22),
      username: s("username"),
      tags: s("tags") ? s("tags").split(/[\s,]+/).filter(Boolean) : [],
      group: s("group") || null,
      modelDir: s("modelDir"),
      restartCommand: s("restartCommand"),
      healthCommand: s("healthCommand"),
      ...(credentialKind === "password" ? { credential: { kind: "password" as const, password: String(f.get("password") ?? "") } } : {}),
      ...(credentialKind === "key" ? { credential: { kind: "key" as const, privateKey: String(f.get("privateKey") ?? ""), ...(s("passphrase") ? { passphrase: s("passphrase") } : {}) } } : {}),
    });
  };
  return (
    <form onSubmit={onSubmit} className="grid gap-4 sm:grid-cols-3" aria-label="Edit device">
      <TextField label="Name" name="name" required defaultValue={device.name} />
      <TextField label="Host" name="host" required defaultValue={device.host} hint="a new address unpins the host key and needs the key or password again" />
      <TextField label="Port" name="port" type="number" min={1} max={65535} defaultValue={device.port} />
      <TextField label="User" name="username" required defaultValue={device.username} />
      <TextField label="Tags" name="tags" defaultValue={device.tags.join(", ")} />
      <TextField label="Group" name="group" defaultValue={device.group ?? ""} />
      <TextField label="Model directory" name="modelDir" required defaultValue={device.modelDir} />
      <TextField label="Restart command" name="restartCommand" required defaultValue={device.restartCommand} />
      <TextField label="Health command" name="healthCommand" required defaultValue={device.healthCommand} />
      <SelectField label="Credential" value={credentialKind} onChange={(e) => setCredentialKind(e.target.value as typeof credentialKind)} options={[{ value: "keep", label: `Keep the stored ${device.authKind === "key" ? "key" : "password"}` }, { value: "key", label: "Replace with an SSH key" }, { value: "password", label: "Replace with a password" }]} />
      {credentialKind === "password" && <TextField label="New password" name="password" type="password" required autoComplete="new-password" />}
      {credentialKind === "key" && (
        <>
          <TextField label="Key passphrase" name="passphrase" type="password" autoComplete="new-password" />
          <div className="space-y-1.5 sm:col-span-3">
            <label htmlFor="edit-private-key" className="block text-sm font-medium">New private key</label>
            <textarea id="edit-private-key" name="privateKey" required rows={4} className="w-full rounded-md border border-zinc-300 bg-white px-3 py-2 font-mono text-xs dark:border-zinc-700 dark:bg-zinc-950" />
          </div>
        </>
      )}
      {update.error && <Alert className="sm:col-span-3">{errorMessage(update.error)}</Alert>}
      <div className="flex gap-2 sm:col-span-3">
        <Button type="submit" disabled={update.isPending}>{update.isPending ? "Saving…" : "Save"}</Button>
        <Button variant="ghost" onClick={onDone}>Cancel</Button>
      </div>
    </form>
  );
}
