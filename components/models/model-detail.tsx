"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { TextField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import type { ModelVersionView } from "@/server/models/models.schemas";
import { AddVersion } from "./add-version";
import { RevalidateForm } from "./revalidate-form";
import { ValidationReportView } from "./validation-report";
import { formatBytes, TestVectorBadge, VersionStatus } from "./version-status";

function describeSource(source: ModelVersionView["source"]): string {
  if (source.kind === "upload") return `upload${source.filename ? ` · ${source.filename}` : ""}`;
  if (source.kind === "url") return source.url;
  if (source.kind === "training") return `LeRobot checkpoint · run ${source.runName} on ${source.repoId}, step ${source.step} (${source.target})`;
  return `${source.repo}@${source.revision} · ${source.filename}${source.isPrivate ? " (private)" : ""}`;
}

function VersionRow({ version, canOperate }: { version: ModelVersionView; canOperate: boolean }) {
  // Open by default once there is a report to read; the person's own choice wins after that.
  const [openChoice, setOpenChoice] = useState<boolean | null>(null);
  const isOpen = openChoice ?? (version.status === "ready" || version.status === "invalid");
  const [isRevalidating, setRevalidating] = useState(false);
  const isBusy = version.status === "fetching" || version.status === "validating";
  return (
    <li className="px-5 py-4" data-version={version.number}>
      <div className="flex flex-wrap items-center gap-3">
        <button type="button" onClick={() => setOpenChoice(!isOpen)} aria-expanded={isOpen} className="font-medium hover:underline">Version {version.number}</button>
        <VersionStatus status={version.status} />
        <TestVectorBadge report={version.validation} />
        <span className="min-w-0 flex-1 truncate text-sm text-zinc-500" title={describeSource(version.source)}>{describeSource(version.source)}</span>
        <span className="text-sm text-zinc-500">{formatBytes(version.bytes)}</span>
        {version.sha256 && <span className="font-mono text-xs text-zinc-400" title={version.sha256}>{version.sha256.slice(0, 12)}</span>}
        <span className="text-sm text-zinc-500"><RelativeTime date={version.createdAt} /></span>
        {version.jobId && <Link href={`/jobs/${version.jobId}`} className="text-sm text-brand-600 hover:underline">{isBusy ? "Watch job" : "Job"}</Link>}
        {canOperate && version.status === "ready" && <Link href={`/endpoints/new?model=${version.modelId}&version=${version.id}`} className="text-sm font-medium text-brand-600 hover:underline">Deploy</Link>}
        {canOperate && !isBusy && version.sha256 && (
          <Button size="sm" variant="ghost" onClick={() => setRevalidating(!isRevalidating)} aria-expanded={isRevalidating}>Validate again</Button>
        )}
      </div>
      {version.error && <Alert className="mt-3">{version.error}</Alert>}
      {isRevalidating && <RevalidateForm version={version} onDone={() => setRevalidating(false)} />}
      {isOpen && <div className="mt-4"><ValidationReportView report={version.validation} /></div>}
    </li>
  );
}

export function ModelDetail({ modelId }: { modelId: string }) {
  const trpc = useTRPC();
  const router = useRouter();
  const { can } = useRole();
  const model = useQuery({
    ...trpc.models.get.queryOptions({ modelId }),
    // While a version is being fetched or validated, its row follows along.
    refetchInterval: (q) => (q.state.data?.versions.some((v) => v.status === "fetching" || v.status === "validating") ? 1500 : false),
  });
  const remove = useMutation(trpc.models.delete.mutationOptions({ onSuccess: () => router.push("/models") }));
  const queryClient = useQueryClient();
  const [isEditing, setEditing] = useState(false);
  const update = useMutation(
    trpc.models.update.mutationOptions({
      onSuccess: () => {
        setEditing(false);
        void queryClient.invalidateQueries({ queryKey: trpc.models.get.queryKey({ modelId }) });
        void queryClient.invalidateQueries({ queryKey: trpc.models.list.queryKey() });
      },
    }),
  );
  const onEdit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    update.mutate({ modelId, name: String(form.get("name")), description: String(form.get("description") ?? "") });
  };

  if (model.error) return <Alert title="Cannot show this model">{errorMessage(model.error)}</Alert>;
  if (!model.data) return <p className="text-sm text-zinc-500">Loading…</p>;
  const m = model.data;
  return (
    <>
      <nav aria-label="Breadcrumb" className="mb-2 text-sm text-zinc-500"><Link href="/models" className="hover:underline">Models</Link> / {m.name}</nav>
      <PageHeader
        title={m.name}
        description={m.description || undefined}
        actions={
          <>
            {can("operator") && <Button variant="secondary" onClick={() => setEditing(!isEditing)} aria-expanded={isEditing}>Edit</Button>}
            {can("admin") && <Button variant="danger" onClick={() => confirm(`Delete ${m.name} and all its versions?`) && remove.mutate({ modelId })} disabled={remove.isPending}>Delete model</Button>}
          </>
        }
      />
      {isEditing && (
        <Card className="mb-6">
          <CardHeader title="Name and description" description="Versions never change; the name and description can." />
          <CardBody>
            <form onSubmit={onEdit} className="grid gap-4 sm:grid-cols-2">
              <TextField label="Model name" name="name" required maxLength={80} defaultValue={m.name} />
              <TextField label="Description" name="description" maxLength={2000} defaultValue={m.description} />
              {update.error && <Alert className="sm:col-span-2">{errorMessage(update.error)}</Alert>}
              <div className="flex gap-3 sm:col-span-2">
                <Button type="submit" disabled={update.isPending}>{update.isPending ? "Saving…" : "Save"}</Button>
                <Button type="button" variant="ghost" onClick={() => setEditing(false)}>Cancel</Button>
              </div>
            </form>
          </CardBody>
        </Card>
      )}
      {remove.error && <Alert className="mb-4">{errorMessage(remove.error)}</Alert>}
      <div className="space-y-6">
        <Card>
          <CardHeader title="Versions" description={`${m.versions.length} version${m.versions.length === 1 ? "" : "s"}, newest first`} />
          {m.versions.length === 0 ? (
            <CardBody><p className="text-sm text-zinc-500">No versions yet.</p></CardBody>
          ) : (
            <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
              {[...m.versions].sort((a, b) => b.number - a.number).map((v) => <VersionRow key={v.id} version={v} canOperate={can("operator")} />)}
            </ul>
          )}
        </Card>
        {can("operator") && <AddVersion modelId={modelId} />}
      </div>
    </>
  );
}
