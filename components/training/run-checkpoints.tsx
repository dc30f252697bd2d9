"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";

type Checkpoint = { step: number; onHost: boolean; version: { id: string; modelId: string; number: number } | null; pullJobId: string | null };

/** Every checkpoint the run saved: those brought home (model versions), and the others, to bring home on request. */
export function RunCheckpoints({ runId, steps, checkpoints }: { runId: string; steps: number; checkpoints: Checkpoint[] }) {
  const trpc = useTRPC();
  const { can } = useRole();
  const queryClient = useQueryClient();
  const pull = useMutation(trpc.training.pullCheckpoint.mutationOptions({ onSettled: () => queryClient.invalidateQueries({ queryKey: trpc.training.run.queryKey({ runId }) }) }));
  return (
    <Card className="mb-6">
      <CardHeader title="Checkpoints" description="Each checkpoint the run saved on its host (checkpoints/<step>). The last one comes home by itself when the run succeeds; any other can be brought home as a version of the run's model." />
      <CardBody>
        {pull.error && <Alert className="mb-3">{errorMessage(pull.error)}</Alert>}
        {checkpoints.length === 0 ? (
          <p className="text-sm text-zinc-500">No checkpoint yet: the first is saved at the run's save frequency.</p>
        ) : (
          <ul className="divide-y divide-zinc-200 text-sm dark:divide-zinc-800" data-testid="run-checkpoints">
            {checkpoints.map((c) => (
              <li key={c.step} className="flex flex-wrap items-center justify-between gap-2 py-2">
                <span className="tabular-nums">
                  step {c.step.toLocaleString()}
                  {c.step === steps && <span className="ml-2 text-xs text-zinc-500">final</span>}
                  {!c.onHost && <span className="ml-2 text-xs text-zinc-500">no longer on the host</span>}
                </span>
                {c.version ? (
                  <Link href={`/models/${c.version.modelId}`} className="text-brand-600 underline">version {c.version.number}</Link>
                ) : c.pullJobId ? (
                  <Link href={`/jobs/${c.pullJobId}`} className="text-xs text-zinc-500 underline">bringing it home…</Link>
                ) : can("operator") && c.onHost ? (
                  <Button variant="secondary" size="sm" disabled={pull.isPending} onClick={() => pull.mutate({ runId, step: c.step })}>Bring home</Button>
                ) : null}
              </li>
            ))}
          </ul>
        )}
      </CardBody>
    </Card>
  );
}
