"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { Alert } from "@/components/ui/alert";
import { Card, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { RunStatusBadge } from "./run-status";

const linkButton = "inline-flex h-10 items-center rounded-md px-4 text-sm font-medium";

export function TrainingPage() {
  const trpc = useTRPC();
  const { can } = useRole();
  const runs = useQuery({ ...trpc.training.runs.queryOptions({}), refetchInterval: 3_000 });
  const targets = useQuery(trpc.training.targets.queryOptions());
  return (
    <>
      <PageHeader
        title="Training"
        description="LeRobot training on your own GPU hosts: the dataset goes over SSH, training runs detached on the host, its log and loss come back live, and the final checkpoint is registered as a model version."
        actions={
          <>
            <Link href="/training/targets" className={`${linkButton} border border-zinc-300 bg-white hover:bg-zinc-100 dark:border-zinc-700 dark:bg-zinc-900 dark:hover:bg-zinc-800`}>Targets{targets.data ? ` (${targets.data.length})` : ""}</Link>
            {can("operator") && <Link href="/training/new" className={`${linkButton} bg-brand-600 text-white hover:bg-brand-700`}>New run</Link>}
          </>
        }
      />
      {targets.data?.length === 0 && (
        <Alert tone="blue" className="mb-4">
          No training target yet. {can("admin") ? <Link href="/training/targets" className="underline">Add a GPU host</Link> : "An admin adds a GPU host under Targets"}, then start a run from a dataset&apos;s page or here.
        </Alert>
      )}
      {runs.error && <Alert className="mb-4">{errorMessage(runs.error)}</Alert>}
      <Card>
        <CardHeader title="Runs" />
        {runs.data?.length === 0 && <p className="px-5 py-10 text-center text-sm text-zinc-500">No training runs yet.</p>}
        <div className="overflow-x-auto">
          <table className="w-full text-sm">
            {runs.data && runs.data.length > 0 && (
              <thead className="text-left text-xs uppercase text-zinc-500">
                <tr>
                  <th className="px-5 py-2">Run</th>
                  <th className="px-3 py-2">Status</th>
                  <th className="px-3 py-2">Progress</th>
                  <th className="hidden px-3 py-2 md:table-cell">Dataset</th>
                  <th className="hidden px-3 py-2 md:table-cell">Target</th>
                  <th className="px-3 py-2">Started</th>
                </tr>
              </thead>
            )}
            <tbody className="divide-y divide-zinc-100 dark:divide-zinc-800">
              {runs.data?.map((r) => (
                <tr key={r.id} data-run={r.name}>
                  <td className="px-5 py-3">
                    <Link href={`/training/runs/${r.id}`} className="font-medium text-brand-600 hover:underline dark:text-brand-500">{r.name}</Link>
                    <p className="text-xs text-zinc-500">{r.policyType}{r.attempt > 1 ? ` · attempt ${r.attempt}` : ""}</p>
                  </td>
                  <td className="px-3 py-3"><RunStatusBadge status={r.status} /></td>
                  <td className="px-3 py-3 tabular-nums">{r.lastStep ?? 0} / {r.steps}</td>
                  <td className="hidden px-3 py-3 md:table-cell">{r.dataset.repoId}</td>
                  <td className="hidden px-3 py-3 md:table-cell">{r.target.name}</td>
                  <td className="px-3 py-3 text-xs text-zinc-500"><RelativeTime date={r.createdAt} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Card>
    </>
  );
}
