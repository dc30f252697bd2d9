"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import type { DeviceFacts } from "@/server/fleet/fleet.schemas";
import { DeviceStateBadge, formatBytes, StateStrip, TargetStateBadge } from "./fleet-badges";
import { DeviceHealthChart } from "./device-health-chart";
import { EditDeviceForm } from "./edit-device-form";
import { VersionPicker } from "./version-picker";

export function DeviceDetail({ deviceId }: { deviceId: string }) {
  const trpc = useTRPC();
  const router = useRouter();
  const queryClient = useQueryClient();
  const { can } = useRole();
  const device = useQuery({ ...trpc.fleet.device.queryOptions({ deviceId }), refetchInterval: 10_000 });
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.fleet.device.queryKey({ deviceId }) });
  const test = useMutation(trpc.fleet.testConnection.mutationOptions({ onSuccess: refresh }));
  const repin = useMutation(trpc.fleet.repin.mutationOptions({ onSuccess: () => { test.reset(); void refresh(); } }));
  const remove = useMutation(trpc.fleet.deleteDevice.mutationOptions({ onSuccess: () => router.push("/fleet") }));
  const rollback = useMutation(trpc.fleet.rollbackDevice.mutationOptions({ onSuccess: ({ id }) => router.push(`/fleet/rollouts/${id}`) }));
  const [versionId, setVersionId] = useState<string | null>(null);
  const [isEditing, setEditing] = useState(false);

  if (device.error) return <Alert>{errorMessage(device.error)}</Alert>;
  const d = device.data;
  if (!d) return <p className="text-sm text-zinc-500">Loading…</p>;
  const facts: DeviceFacts = test.data?.facts ?? d.facts;

  return (
    <>
      <PageHeader
        title={d.name}
        description={<>{d.username}@{d.host}:{d.port} · model directory <code>{d.modelDir}</code></>}
        actions={
          <>
            <DeviceStateBadge state={d.state} />
            {can("admin") && <Button onClick={() => test.mutate({ deviceId })} disabled={test.isPending}>{test.isPending ? "Connecting…" : "Test connection"}</Button>}
            {can("admin") && <Button variant="secondary" onClick={() => setEditing((v) => !v)} aria-expanded={isEditing}>Edit</Button>}
            {can("admin") && <Button variant="danger" onClick={() => confirm(`Remove ${d.name} from the fleet?`) && remove.mutate({ deviceId })}>Remove</Button>}
          </>
        }
      />
      {isEditing && (
        <Card className="mb-6">
          <CardHeader title="Edit device" />
          <CardBody>
            <EditDeviceForm device={d} onDone={() => setEditing(false)} />
          </CardBody>
        </Card>
      )}
      {test.data?.isOk && <Alert tone="green" className="mb-4" title="Connected">{test.data.isNewlyPinned ? "Host key pinned: " : "Host key matches: "}<code data-field="fingerprint">{test.data.fingerprint}</code> · {test.data.latencyMs} ms</Alert>}
      {test.data && !test.data.isOk && (
        <Alert className="mb-4" title="Connection failed">
          <p>{test.data.error}</p>
          {test.data.offeredFingerprint && can("admin") && (
            <div className="mt-2 flex flex-wrap items-center gap-2">
              <span>The device now offers <code>{test.data.offeredFingerprint}</code>.</span>
              <Button size="sm" variant="secondary" onClick={() => repin.mutate({ deviceId, fingerprint: test.data!.offeredFingerprint! })}>I checked it on the device: re-pin</Button>
            </div>
          )}
        </Alert>
      )}
      {(test.error || repin.error || remove.error || rollback.error) && <Alert className="mb-4">{errorMessage(test.error ?? repin.error ?? remove.error ?? rollback.error)}</Alert>}
      {d.lastError && !test.data && <Alert tone="amber" className="mb-4" title="Last check">{d.lastError}</Alert>}
      {d.versionWarning && <Alert tone="amber" className="mb-4" title="The model it runs is no longer valid"><p data-field="version-warning">{d.versionWarning}</p><p className="mt-1">The device keeps running it; roll out a version that passed validation.</p></Alert>}

      <div className="mb-6 grid gap-6 lg:grid-cols-2">
        <Card>
          <CardHeader title="Facts" description={facts.checkedAt ? <>read <RelativeTime date={new Date(facts.checkedAt)} /></> : "Run Test connection to read them"} />
          <CardBody>
            <dl className="grid grid-cols-[10rem_1fr] gap-x-4 gap-y-1.5 text-sm" aria-label="Device facts">
              <Fact label="Host key">{d.pinnedHostKey ? <code className="break-all">{d.pinnedHostKey}</code> : "not pinned yet"}</Fact>
              <Fact label="OS">{facts.os}</Fact>
              <Fact label="Architecture">{facts.arch}</Fact>
              <Fact label="Board">{facts.jetsonRelease ?? facts.board}</Fact>
              <Fact label="CPU">{facts.cpu ? `${facts.cpu}${facts.cpus ? ` × ${facts.cpus}` : ""}` : facts.cpus ? `${facts.cpus} cores` : null}</Fact>
              <Fact label="Memory">{facts.memoryBytes ? `${formatBytes(facts.memoryBytes)} (${formatBytes(facts.memoryAvailableBytes)} free)` : null}</Fact>
              <Fact label="Free disk">{facts.diskFreeBytes !== undefined && facts.diskFreeBytes !== null ? formatBytes(facts.diskFreeBytes) : null}</Fact>
              <Fact label="Policy service">{facts.isServicePresent === undefined ? null : facts.isServicePresent ? facts.serviceState ?? "present" : "not installed"}</Fact>
              <Fact label="Current model">{facts.currentVersion ? `${facts.currentVersion.modelName} v${facts.currentVersion.number}` : facts.currentTarget ?? (facts.checkedAt ? "none" : null)}</Fact>
              <Fact label="Tags / group">{[...d.tags, d.group ? `group ${d.group}` : null].filter(Boolean).join(", ") || "—"}</Fact>
            </dl>
          </CardBody>
        </Card>
        <Card>
          <CardHeader title="Recent checks" description={<StateStrip states={d.recentStates} />} />
          <ol className="max-h-80 divide-y divide-zinc-100 overflow-auto text-sm dark:divide-zinc-800" aria-label="Timeline">
            {d.samples.length === 0 && <li className="px-5 py-6 text-center text-zinc-500">No checks yet.</li>}
            {d.samples.map((s, i) => (
              <li key={i} className="flex flex-wrap items-center gap-3 px-5 py-2">
                <DeviceStateBadge state={s.state} />
                <span className="text-zinc-500"><RelativeTime date={s.at} /></span>
                {s.load1 !== null && <span>load {s.load1}</span>}
                {s.diskFreeBytes !== null && <span>{formatBytes(s.diskFreeBytes)} free</span>}
                {s.serviceState && <span>service {s.serviceState}</span>}
                {s.error && <span className="w-full truncate text-xs text-zinc-500">{s.error}</span>}
              </li>
            ))}
          </ol>
        </Card>
      </div>

      <Card className="mb-6">
        <CardHeader title="Health over time" description="What the worker's checks found; point at a chart to read a moment." />
        <CardBody>
          <DeviceHealthChart deviceId={deviceId} />
        </CardBody>
      </Card>

      <Card>
        <CardHeader
          title="Deployments"
          actions={
            can("operator") && (
              <div className="flex items-end gap-2">
                <VersionPicker onChange={setVersionId} />
                <Button variant="secondary" disabled={!versionId || rollback.isPending} onClick={() => versionId && confirm(`Deploy the chosen version to ${d.name} now? The device swaps to it and restarts its policy.`) && rollback.mutate({ deviceId, modelVersionId: versionId })}>Roll back to this version</Button>
              </div>
            )
          }
        />
        <ul className="divide-y divide-zinc-100 text-sm dark:divide-zinc-800" aria-label="Deployment history">
          {d.history.length === 0 && <li className="px-5 py-6 text-center text-zinc-500">Nothing deployed here yet.</li>}
          {d.history.map((h) => (
            <li key={h.deploymentId} className="flex flex-wrap items-center gap-3 px-5 py-2">
              <Link href={`/fleet/rollouts/${h.deploymentId}`} className="text-brand-600 hover:underline">{h.kind === "rollback" ? "Rollback to " : ""}{h.version ? `${h.version.modelName} v${h.version.number}` : "version"}</Link>
              <TargetStateBadge state={h.state} />
              {h.error && <span className="truncate text-zinc-500">{h.error}</span>}
              <span className="ml-auto text-xs text-zinc-500"><RelativeTime date={h.createdAt} /></span>
            </li>
          ))}
        </ul>
      </Card>
    </>
  );
}

function Fact({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <>
      <dt className="text-zinc-500">{label}</dt>
      <dd data-fact={label}>{children ?? <span className="text-zinc-400">—</span>}</dd>
    </>
  );
}
