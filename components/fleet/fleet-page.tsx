"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { TextField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { AddDeviceForm } from "./add-device-form";
import { AlertWebhookCard } from "./alert-webhook";
import { DeviceStateBadge, RolloutStatusBadge, StateStrip } from "./fleet-badges";

export function FleetPage() {
  const trpc = useTRPC();
  const { can } = useRole();
  const devices = useQuery({ ...trpc.fleet.devices.queryOptions(), refetchInterval: 10_000 });
  const rollouts = useQuery({ ...trpc.fleet.rollouts.queryOptions(), refetchInterval: 5_000 });
  const alerts = useQuery({ ...trpc.fleet.alerts.queryOptions({ isOpenOnly: true, limit: 10 }), refetchInterval: 10_000 });
  const [form, setForm] = useState<{ host?: string; port?: number } | null>(null);
  const [isScanOpen, setScanOpen] = useState(false);

  return (
    <>
      <PageHeader
        title="Fleet"
        description="Devices reached over SSH, the policy each runs and whether it is healthy; rollouts of model versions with atomic swaps and automatic rollback."
        actions={
          <>
            {can("admin") && <Button variant="secondary" onClick={() => setScanOpen((v) => !v)} aria-expanded={isScanOpen}>Find devices</Button>}
            {can("admin") && <Button variant="secondary" onClick={() => setForm((v) => (v ? null : {}))} aria-expanded={Boolean(form)}>Add device</Button>}
            {can("operator") && <Link href="/fleet/rollouts/new" className="inline-flex h-10 items-center rounded-md bg-brand-600 px-4 text-sm font-medium text-white hover:bg-brand-700">New rollout</Link>}
          </>
        }
      />
      {alerts.data && alerts.data.length > 0 && <AlertsList alerts={alerts.data} canAcknowledge={can("operator")} />}
      {isScanOpen && <DiscoverCard onPick={(host, port) => setForm({ host, port })} />}
      {form && (
        <Card className="mb-6">
          <CardHeader title="Add device" description="Then run Test connection on its page: it pins the host key and reads what the device is." />
          <CardBody>
            <AddDeviceForm key={`${form.host}:${form.port}`} initialHost={form.host} initialPort={form.port} onDone={() => setForm(null)} />
          </CardBody>
        </Card>
      )}
      {devices.error && <Alert className="mb-4">{errorMessage(devices.error)}</Alert>}
      <Card className="mb-6">
        <CardHeader title="Devices" />
        {devices.data?.length === 0 && <p className="px-5 py-10 text-center text-sm text-zinc-500">No devices yet.{can("admin") ? " Add one, or find the ones on your network." : ""}</p>}
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {devices.data?.map((d) => (
            <li key={d.id} data-device={d.name} className="flex flex-wrap items-center gap-4 px-5 py-3">
              <div className="min-w-0 flex-1">
                <Link href={`/fleet/devices/${d.id}`} className="font-medium text-brand-600 hover:underline dark:text-brand-500">{d.name}</Link>
                <p className="truncate text-xs text-zinc-500">
                  {d.username}@{d.host}:{d.port}
                  {d.group ? ` · group ${d.group}` : ""}
                  {d.tags.length ? ` · ${d.tags.join(", ")}` : ""}
                </p>
                {d.versionWarning && <p className="mt-1 text-xs text-amber-700 dark:text-amber-400" data-field="version-warning">⚠ {d.versionWarning}</p>}
              </div>
              <DeviceStateBadge state={d.state} />
              <StateStrip states={d.recentStates} />
              <span className="w-40 truncate text-sm" data-field="version">{d.currentVersion ? `${d.currentVersion.modelName} v${d.currentVersion.number}` : d.currentSha256 ? `${d.currentSha256.slice(0, 12)}…` : <span className="text-zinc-400">no model</span>}</span>
              <span className="w-28 text-xs text-zinc-500">{d.lastSeenAt ? <>seen <RelativeTime date={d.lastSeenAt} /></> : "never seen"}</span>
            </li>
          ))}
        </ul>
      </Card>
      <Card>
        <CardHeader title="Rollouts" />
        {rollouts.data?.length === 0 && <p className="px-5 py-8 text-center text-sm text-zinc-500">No rollouts yet.</p>}
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {rollouts.data?.map((r) => (
            <li key={r.id} data-rollout={r.id} className="flex flex-wrap items-center gap-4 px-5 py-3 text-sm">
              <Link href={`/fleet/rollouts/${r.id}`} className="font-medium text-brand-600 hover:underline dark:text-brand-500">
                {r.kind === "rollback" ? "Rollback to " : ""}
                {r.version ? `${r.version.modelName} v${r.version.number}` : "version"}
              </Link>
              <RolloutStatusBadge status={r.status} />
              <span className="text-zinc-500">{Object.entries(r.counts).map(([k, n]) => `${n} ${k.replace("_", " ")}`).join(" · ")}</span>
              <span className="ml-auto text-xs text-zinc-500"><RelativeTime date={r.createdAt} /></span>
            </li>
          ))}
        </ul>
      </Card>
      {can("admin") && <AlertWebhookCard />}
    </>
  );
}

function AlertsList({ alerts, canAcknowledge }: { alerts: { id: string; title: string; message: string; severity: string; createdAt: Date }[]; canAcknowledge: boolean }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const ack = useMutation(trpc.fleet.acknowledgeAlert.mutationOptions({ onSuccess: () => queryClient.invalidateQueries({ queryKey: trpc.fleet.alerts.queryKey() }) }));
  return (
    <div className="mb-6 space-y-2" aria-label="Alerts">
      {ack.error && <Alert>{`The alert was not dismissed: ${errorMessage(ack.error)}`}</Alert>}
      {alerts.map((a) => (
        <Alert key={a.id} tone={a.severity === "critical" ? "red" : "amber"} title={a.title}>
          <div className="flex flex-wrap items-center justify-between gap-2">
            <span>{a.message}</span>
            {canAcknowledge && <Button size="sm" variant="secondary" disabled={ack.isPending && ack.variables?.alertId === a.id} onClick={() => ack.mutate({ alertId: a.id })}>Dismiss</Button>}
          </div>
        </Alert>
      ))}
    </div>
  );
}

function DiscoverCard({ onPick }: { onPick: (host: string, port: number) => void }) {
  const trpc = useTRPC();
  const discover = useMutation(trpc.fleet.discover.mutationOptions());
  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    discover.mutate({ range: String(f.get("range")), port: Number(f.get("port") || 22) });
  };
  return (
    <Card className="mb-6">
      <CardHeader title="Find devices" description="Looks for SSH servers in a range (at most 1024 addresses); nothing is sent to them but a connection." />
      <CardBody>
        <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-3">
          <TextField label="Range" name="range" required placeholder="192.168.1.0/24" className="w-64" />
          <TextField label="Port" name="port" type="number" defaultValue={22} className="w-28" />
          <Button type="submit" disabled={discover.isPending}>{discover.isPending ? "Scanning…" : "Scan"}</Button>
        </form>
        {discover.error && <Alert className="mt-4">{errorMessage(discover.error)}</Alert>}
        {discover.data && (
          <ul className="mt-4 divide-y divide-zinc-100 text-sm dark:divide-zinc-800">
            {discover.data.length === 0 && <li className="py-2 text-zinc-500">Nothing answered.</li>}
            {discover.data.map((h) => (
              <li key={`${h.host}:${h.port}`} className="flex items-center gap-3 py-2">
                <span className="font-mono">{h.host}:{h.port}</span>
                <span className="truncate text-zinc-500">{h.banner}</span>
                {h.knownDeviceId ? <Link className="ml-auto text-brand-600" href={`/fleet/devices/${h.knownDeviceId}`}>already added</Link> : <Button size="sm" className="ml-auto" onClick={() => onPick(h.host, h.port)}>Add</Button>}
              </li>
            ))}
          </ul>
        )}
      </CardBody>
    </Card>
  );
}
