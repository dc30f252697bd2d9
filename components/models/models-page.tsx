"use client";

import { useMutation, useQuery } from "@tanstack/react-query";
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
import { VersionStatus } from "./version-status";

export function ModelsPage() {
  const trpc = useTRPC();
  const router = useRouter();
  const { can } = useRole();
  const models = useQuery(trpc.models.list.queryOptions());
  const create = useMutation(trpc.models.create.mutationOptions({ onSuccess: ({ id }) => router.push(`/models/${id}`) }));
  const [isFormOpen, setFormOpen] = useState(false);

  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    create.mutate({ name: String(form.get("name")), description: String(form.get("description") ?? "") });
  };

  return (
    <>
      <PageHeader
        title="Models"
        description="Policies and models with their versions. Every version is an ONNX file, checked with onnxruntime before anyone deploys it."
        actions={can("operator") && <Button onClick={() => setFormOpen((v) => !v)} aria-expanded={isFormOpen}>New model</Button>}
      />
      {isFormOpen && (
        <Card className="mb-6">
          <CardHeader title="New model" description="Name it after what it does; versions come next." />
          <CardBody>
            <form onSubmit={onSubmit} className="grid gap-4 sm:grid-cols-2">
              <TextField label="Model name" name="name" required maxLength={80} placeholder="e.g. so101-pick-cube" />
              <TextField label="Description" name="description" maxLength={2000} placeholder="optional" />
              {create.error && <Alert className="sm:col-span-2">{errorMessage(create.error)}</Alert>}
              <div className="sm:col-span-2"><Button type="submit" disabled={create.isPending}>{create.isPending ? "Creating…" : "Create model"}</Button></div>
            </form>
          </CardBody>
        </Card>
      )}
      {models.error && <Alert className="mb-4">{errorMessage(models.error)}</Alert>}
      <Card>
        {models.data?.length === 0 && <p className="px-5 py-10 text-center text-sm text-zinc-500">No models yet.{can("operator") ? " Create one, then add a version." : ""}</p>}
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {models.data?.map((m) => (
            <li key={m.id} data-model={m.name} className="flex flex-wrap items-center gap-4 px-5 py-4">
              <div className="min-w-0 flex-1">
                <Link href={`/models/${m.id}`} className="font-medium text-brand-600 hover:underline dark:text-brand-500">{m.name}</Link>
                {m.description && <p className="truncate text-sm text-zinc-500">{m.description}</p>}
              </div>
              <span className="text-sm text-zinc-500">{m.versionCount} version{m.versionCount === 1 ? "" : "s"}</span>
              {m.latestVersion ? <span className="flex items-center gap-2 text-sm">v{m.latestVersion.number} <VersionStatus status={m.latestVersion.status} /></span> : <span className="text-sm text-zinc-400">no versions</span>}
              <span className="text-sm text-zinc-500">updated <RelativeTime date={m.updatedAt} /></span>
            </li>
          ))}
        </ul>
      </Card>
    </>
  );
}
