"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { Alert } from "@/components/ui/alert";
import { Card } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { EndpointStatus } from "./endpoint-status";

export function EndpointsPage() {
  const trpc = useTRPC();
  const { can } = useRole();
  const endpoints = useQuery({
    ...trpc.endpoints.list.queryOptions(),
    refetchInterval: (q) => (q.state.data?.some((e) => e.status === "deploying") ? 2000 : false),
  });
  return (
    <>
      <PageHeader
        title="Endpoints"
        description="Model versions answered over HTTP by the model server: the Open Inference Protocol that KServe and Triton clients speak, and /predict for quick calls."
        actions={can("operator") && <Link href="/endpoints/new" className="inline-flex h-10 items-center rounded-md bg-brand-600 px-4 text-sm font-medium text-white hover:bg-brand-700">New endpoint</Link>}
      />
      {endpoints.error && <Alert className="mb-4">{errorMessage(endpoints.error)}</Alert>}
      <Card>
        {endpoints.data?.length === 0 && (
          <p className="px-5 py-10 text-center text-sm text-zinc-500">
            No endpoints yet.{can("operator") ? " Deploy a validated model version with the wizard." : ""}
          </p>
        )}
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {endpoints.data?.map((e) => (
            <li key={e.id} data-endpoint={e.name} className="flex flex-wrap items-center gap-4 px-5 py-4">
              <div className="min-w-0 flex-1">
                <Link href={`/endpoints/${e.id}`} className="font-mono font-medium text-brand-600 hover:underline dark:text-brand-500">{e.name}</Link>
                <p className="truncate text-sm text-zinc-500">{e.modelName} · version {e.versionNumber}</p>
                {e.versionWarning && <p className="mt-1 text-sm text-amber-700 dark:text-amber-400" data-field="version-warning">⚠ {e.versionWarning}</p>}
              </div>
              <EndpointStatus status={e.status} />
              <span className="text-sm text-zinc-500">{e.settings.concurrency} at once · {e.settings.threads} thread{e.settings.threads === 1 ? "" : "s"}</span>
              <span className="text-sm text-zinc-500">updated <RelativeTime date={e.updatedAt} /></span>
            </li>
          ))}
        </ul>
      </Card>
    </>
  );
}
