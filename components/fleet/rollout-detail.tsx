"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useEffect, useRef } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { onLiveJobEvent } from "@/components/jobs/use-live-jobs";
import { RolloutStatusBadge, TargetStateBadge } from "./fleet-badges";

export function RolloutDetail({ deploymentId }: { deploymentId: string }) {
  const trpc = useTRPC();
  const router = useRouter();
  const queryClient = useQueryClient();
  const { can } = useRole();
  const rollout = useQuery({
    ...trpc.fleet.rollout.queryOptions({ deploymentId }),
    // The live job events below are the fast path; this catches anything they miss.
    refetchInterval: (q) => (q.state.data && isFinished(q.state.data) ? false : 3000),
  });
  const jobIds = useRef(new Set<string>());
  useEffect(() => {
    jobIds.current = new Set((rollout.data?.targets ?? []).map((t) => t.jobId).filter((id): id is string => Boolean(id)));
  }, [rollout.data]);
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    return onLiveJobEvent((e) => {
      if (!jobIds.current.has(e.jobId) || timer) return;
      timer = setTimeout(() => {
        timer = null;
        void queryClient.invalidateQueries({ queryKey: trpc.fleet.rollout.queryKey({ deploymentId }) });
      }, 200);
    });
  }, [queryClient, trpc, deploymentId]);
  const rollback = useMutation(trpc.fleet.rollbackRollout.mutationOptions({ onSuccess: ({ id }) => router.push(`/fleet/rollouts/${id}`) }));
  const cancel = useMutation(trpc.fleet.cancelRollout.mutationOptions({ onSuccess: () => queryClient.invalidateQueries({ queryKey: trpc.fleet.rollout.queryKey({ deploymentId }) }) }));

  if (rollout.error) return <Alert>{errorMessage(rollout.error)}</Alert>;
  const r = rollout.data;
  if (!r) return <p className="text-sm text-zinc-500">Loading…</p>;
  const isDone = isFinished(r);
  const isCancellable = r.status === "scheduled" || r.status === "running";
  const strategy = r.strategy.kind === "all" ? "all at once" : `canary ${r.strategy.canary}, then batches of ${r.strategy.batchSize}, stop above ${r.strategy.maxFailurePercent}% failed`;

  return (
    <>
      <PageHeader
        title={`${r.kind === "rollback" ? "Rollback to" : "Rollout of"} ${r.version ? `${r.version.modelName} v${r.version.number}` : "a version"}`}
        description={<>{strategy} · asked for <RelativeTime date={r.createdAt} />{r.startAt ? <> · {r.startAt > new Date() ? "starts" : "scheduled for"} {r.startAt.toLocaleString()}</> : null}</>}
        actions={
          <>
            <span data-field="rollout-status"><RolloutStatusBadge status={r.status} /></span>
            {can("operator") && isCancellable && (
              <Button
                variant="secondary"
                disabled={cancel.isPending}
                onClick={() => confirm("Cancel this rollout? Devices not started are skipped; a device being deployed stops, and goes back to its previous model if it was already swapped.") && cancel.mutate({ deploymentId })}
              >
                Cancel rollout
              </Button>
            )}
            {can("operator") && isDone && r.kind === "rollout" && (
              <Button variant="secondary" disabled={rollback.isPending} onClick={() => confirm("Roll every device of this rollout back to the version it ran before?") && rollback.mutate({ deploymentId })}>Roll back rollout</Button>
            )}
          </>
        }
      />
      {r.error && <Alert tone="amber" className="mb-4">{r.error}</Alert>}
      {rollback.error && <Alert className="mb-4">{errorMessage(rollback.error)}</Alert>}
      {cancel.error && <Alert className="mb-4">{errorMessage(cancel.error)}</Alert>}
      <div className="grid gap-4 md:grid-cols-2 xl:grid-cols-3" aria-label="Devices">
        {r.targets.map((t) => (
          <Card key={t.id} data-target={t.deviceName} data-state={t.state}>
            <CardHeader
              title={<Link href={`/fleet/devices/${t.deviceId}`} className="hover:underline">{t.deviceName}</Link>}
              description={<>{t.phase === 0 ? (r.strategy.kind === "canary" ? "canary" : "all at once") : `batch ${t.phase}`} · <span data-field="step">{t.step ?? "waiting"}</span></>}
              actions={<TargetStateBadge state={t.state} />}
            />
            {t.rollback && <p className="px-5 pt-2 text-xs" data-field="rollback">Automatic rollback: {t.rollback}</p>}
            {t.error && <p className="px-5 pt-2 text-xs text-red-700 dark:text-red-400">{t.error}</p>}
            <pre className="m-3 max-h-56 overflow-auto rounded bg-zinc-950 p-3 text-[11px] leading-relaxed text-zinc-100" data-field="log">{t.log || "…"}</pre>
          </Card>
        ))}
      </div>
    </>
  );
}

/** Ended, with every device settled (a cancelled rollout's running devices may still be going back). */
function isFinished(r: { status: string; targets: { state: string }[] }): boolean {
  return ["succeeded", "failed", "aborted", "cancelled"].includes(r.status) && r.targets.every((t) => t.state !== "queued" && t.state !== "running");
}
