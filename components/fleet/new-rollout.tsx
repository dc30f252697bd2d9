"use client";

import { useMutation, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody } from "@/components/ui/card";
import { SelectField, TextField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { errorMessage, useTRPC } from "@/components/trpc";
import { DeviceStateBadge } from "./fleet-badges";
import { VersionPicker } from "./version-picker";

/** The form's labels, by the input path an error names. */
const ROLLOUT_LABELS: Record<string, string> = {
  modelVersionId: "Model version",
  "selector.deviceIds": "Devices",
  "selector.group": "Group",
  "selector.tag": "Tag",
  "strategy.canary": "Canary devices",
  "strategy.batchSize": "Then batches of",
  "strategy.maxFailurePercent": "Stop when failures pass (%)",
  startAt: "Start at",
};

export function NewRollout() {
  const trpc = useTRPC();
  const router = useRouter();
  const devices = useQuery(trpc.fleet.devices.queryOptions());
  const create = useMutation(trpc.fleet.createRollout.mutationOptions({ onSuccess: ({ id }) => router.push(`/fleet/rollouts/${id}`) }));
  const [versionId, setVersionId] = useState<string | null>(null);
  const [targetKind, setTargetKind] = useState<"devices" | "group" | "tag">("devices");
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [strategy, setStrategy] = useState<"all" | "canary">("canary");
  const groups = [...new Set((devices.data ?? []).map((d) => d.group).filter((g): g is string => Boolean(g)))];
  const tags = [...new Set((devices.data ?? []).flatMap((d) => d.tags))];

  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (!versionId) return;
    const f = new FormData(e.currentTarget);
    const selector = targetKind === "devices" ? { deviceIds: [...picked] } : targetKind === "group" ? { group: String(f.get("group")) } : { tag: String(f.get("tag")) };
    const startAt = String(f.get("startAt") ?? "");
    create.mutate({
      modelVersionId: versionId,
      selector,
      strategy: strategy === "all" ? { kind: "all" } : { kind: "canary", canary: Number(f.get("canary")), batchSize: Number(f.get("batchSize")), maxFailurePercent: Number(f.get("maxFailurePercent")) },
      ...(startAt ? { startAt: new Date(startAt) } : {}),
    });
  };

  return (
    <>
      <PageHeader title="New rollout" description="Each device gets the file, checks it, swaps atomically, restarts the policy and is health-checked; a device that does not come up healthy goes back by itself." />
      <Card>
        <CardBody>
          <form onSubmit={onSubmit} className="space-y-6">
            <fieldset>
              <legend className="mb-2 text-sm font-semibold">Model version</legend>
              <VersionPicker onChange={setVersionId} />
            </fieldset>
            <fieldset>
              <legend className="mb-2 text-sm font-semibold">Targets</legend>
              <SelectField label="Choose by" className="mb-3 w-56" value={targetKind} onChange={(e) => setTargetKind(e.target.value as typeof targetKind)} options={[{ value: "devices", label: "Devices" }, { value: "group", label: "Group" }, { value: "tag", label: "Tag" }]} />
              {targetKind === "devices" && devices.data?.length === 0 && <p className="text-sm text-zinc-500">No devices yet: add one under <Link href="/fleet" className="underline">Fleet</Link> first.</p>}
              {targetKind === "devices" && (
                <ul className="grid gap-2 sm:grid-cols-2 lg:grid-cols-3">
                  {devices.data?.map((d) => (
                    <li key={d.id}>
                      <label className="flex items-center gap-2 rounded-md border border-zinc-200 px-3 py-2 text-sm dark:border-zinc-800">
                        <input type="checkbox" name="device" value={d.id} checked={picked.has(d.id)} onChange={(e) => setPicked((s) => { const n = new Set(s); if (e.target.checked) n.add(d.id); else n.delete(d.id); return n; })} />
                        <span className="flex-1">{d.name}</span>
                        <DeviceStateBadge state={d.state} />
                      </label>
                    </li>
                  ))}
                </ul>
              )}
              {targetKind === "group" && (groups.length ? <SelectField label="Group" name="group" className="w-56" options={groups.map((g) => ({ value: g, label: g }))} /> : <p className="text-sm text-zinc-500">No device is in a group yet: give devices a group on their page under Fleet.</p>)}
              {targetKind === "tag" && (tags.length ? <SelectField label="Tag" name="tag" className="w-56" options={tags.map((t) => ({ value: t, label: t }))} /> : <p className="text-sm text-zinc-500">No device has a tag yet: give devices tags on their page under Fleet.</p>)}
            </fieldset>
            <fieldset>
              <legend className="mb-2 text-sm font-semibold">Strategy</legend>
              <SelectField label="Strategy" className="mb-3 w-56" value={strategy} onChange={(e) => setStrategy(e.target.value as typeof strategy)} options={[{ value: "canary", label: "Canary, then batches" }, { value: "all", label: "All at once" }]} />
              {strategy === "canary" && (
                <div className="grid gap-4 sm:grid-cols-3">
                  <TextField label="Canary devices" name="canary" type="number" min={1} defaultValue={1} />
                  <TextField label="Then batches of" name="batchSize" type="number" min={1} defaultValue={2} />
                  <TextField label="Stop when failures pass (%)" name="maxFailurePercent" type="number" min={0} max={100} defaultValue={50} />
                </div>
              )}
            </fieldset>
            <TextField label="Start at" name="startAt" type="datetime-local" hint="empty starts now" className="w-64" />
            {create.error && <Alert>{errorMessage(create.error, ROLLOUT_LABELS)}</Alert>}
            <div className="flex flex-wrap items-center gap-3">
              <Button type="submit" disabled={!versionId || create.isPending || (targetKind === "devices" && picked.size === 0) || (targetKind === "group" && !groups.length) || (targetKind === "tag" && !tags.length)}>{create.isPending ? "Starting…" : "Start rollout"}</Button>
              {!versionId ? <span className="text-sm text-zinc-500">Choose a model version first.</span> : targetKind === "devices" && picked.size === 0 ? <span className="text-sm text-zinc-500">Tick the devices to deploy to.</span> : null}
            </div>
          </form>
        </CardBody>
      </Card>
    </>
  );
}
