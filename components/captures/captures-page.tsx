"use client";

import { useMutation, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { SelectField, TextField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";

export function CapturesPage() {
  const trpc = useTRPC();
  const { can } = useRole();
  const sessions = useQuery({ ...trpc.captures.list.queryOptions({ limit: 100 }), refetchInterval: 5_000 });
  return (
    <>
      <PageHeader title="Captures" description="Camera frames and joint angles in, a Gaussian-splat scene out: a trainer on a GPU host builds the scene while you record, and the 3D view shows it with the arm's twin." />
      {sessions.error && <Alert className="mb-4">{errorMessage(sessions.error)}</Alert>}
      {sessions.data?.length === 0 && <p className="mb-6 rounded-md border border-dashed border-zinc-300 px-5 py-8 text-center text-sm text-zinc-500 dark:border-zinc-700">No capture yet. Start one below; <Link href="/docs/capture" className="underline">the capture guide</Link> says how a trainer joins it.</p>}
      {sessions.data && sessions.data.length > 0 && (
        <Card className="mb-6">
          <CardBody>
            <table className="w-full text-left text-sm" data-field="captures">
              <thead className="text-xs text-zinc-500"><tr><th className="py-1">Session</th><th>Status</th><th>Frames</th><th>Snapshots</th><th>Trainer</th><th>Started</th></tr></thead>
              <tbody>
                {sessions.data.map((s) => (
                  <tr key={s.id} data-capture={s.name} className="border-t border-zinc-100 dark:border-zinc-800">
                    <td className="py-2"><Link href={`/captures/${s.id}`} className="font-medium text-brand-600 hover:underline">{s.name}</Link></td>
                    <td><Badge tone={s.status === "active" ? "green" : "neutral"}>{s.status}</Badge></td>
                    <td className="tabular-nums">{s.frameCount}</td>
                    <td className="tabular-nums">{s.snapshotCount}</td>
                    <td><TrainerBadge state={s.trainer.state} name={s.trainer.name} /></td>
                    <td className="text-xs text-zinc-500"><RelativeTime date={s.createdAt} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </CardBody>
        </Card>
      )}
      {can("operator") && <NewCaptureCard />}
    </>
  );
}

export function TrainerBadge({ state, name }: { state: "none" | "active" | "silent"; name: string | null }) {
  if (state === "none") return <Badge tone="neutral">no trainer</Badge>;
  return <Badge tone={state === "active" ? "green" : "amber"}>{name ?? "trainer"} {state === "silent" ? "silent" : "training"}</Badge>;
}

function NewCaptureCard() {
  const trpc = useTRPC();
  const router = useRouter();
  const robots = useQuery(trpc.hardware.robots.queryOptions({}));
  const create = useMutation(trpc.captures.create.mutationOptions({ onSuccess: (s) => router.push(`/captures/${s.id}`) }));
  return (
    <Card>
      <CardHeader title="New capture" description="One capture is active at a time in an organisation: the earlier capture clients (/upload-frame, /update-joint-angles) post to it." />
      <CardBody>
        <form
          className="grid gap-4 sm:grid-cols-3"
          onSubmit={(e) => {
            e.preventDefault();
            const f = new FormData(e.currentTarget);
            const robotId = String(f.get("robotId") ?? "");
            create.mutate({ name: String(f.get("name")), chunkSize: Number(f.get("chunkSize")) || 50, robotId: robotId || null });
          }}
        >
          <TextField label="Name" name="name" required placeholder="Kitchen table, morning" />
          <TextField label="Frames per chunk" name="chunkSize" type="number" min={1} max={1000} defaultValue={50} />
          <SelectField label="Arm" name="robotId" options={[{ value: "", label: "none" }, ...(robots.data ?? []).map((r) => ({ value: r.id, label: r.name }))]} />
          <div className="sm:col-span-3"><Button type="submit" disabled={create.isPending}>Start capturing</Button></div>
          {create.error && <Alert className="sm:col-span-3">{errorMessage(create.error)}</Alert>}
        </form>
      </CardBody>
    </Card>
  );
}
