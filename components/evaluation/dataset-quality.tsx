"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { METRIC_CODES, METRIC_NAMES } from "@/server/evaluation/evaluation.schemas";

export const scoreText = (s: number | null | undefined) => (s === null || s === undefined ? "–" : s.toFixed(2));

/** The dataset's latest score, its scorings, and Evaluate. */
export function DatasetQuality({ datasetId, canScore }: { datasetId: string; canScore: boolean }) {
  const trpc = useTRPC();
  const { can } = useRole();
  const queryClient = useQueryClient();
  const list = useQuery({ ...trpc.evaluation.list.queryOptions({ datasetId }), refetchInterval: (q) => (q.state.data?.some((e) => e.status === "queued" || e.status === "running") ? 1_000 : false) });
  const start = useMutation(trpc.evaluation.start.mutationOptions({ onSettled: () => queryClient.invalidateQueries({ queryKey: trpc.evaluation.list.queryKey({ datasetId }) }) }));
  const canStart = can("operator") && canScore;
  const encoders = useQuery({ ...trpc.evaluation.imageEncoders.queryOptions(), enabled: canStart });
  const [encoder, setEncoder] = useState("");
  const latest = list.data?.find((e) => e.status === "succeeded");
  const running = list.data?.find((e) => e.status === "queued" || e.status === "running");
  return (
    <Card data-testid="dataset-quality">
      <CardHeader
        title="Quality"
        description={<>The six DataBench metrics, each in [0, 1], and per-episode findings (<Link href="/docs/databench" className="underline">the scoring guide</Link>).</>}
        actions={
          canStart ? (
            <>
              {Boolean(encoders.data?.length) && (
                <select aria-label="Visual descriptors" value={encoder} onChange={(ev) => setEncoder(ev.target.value)} className="h-8 max-w-56 rounded-md border border-zinc-300 bg-white px-2 text-sm dark:border-zinc-700 dark:bg-zinc-950">
                  <option value="">frames alone (no model)</option>
                  {encoders.data!.map((m) => <option key={m.versionId} value={m.versionId}>{m.modelName} v{m.number} ({m.width}×{m.height})</option>)}
                </select>
              )}
              <Button size="sm" disabled={start.isPending || Boolean(running)} onClick={() => start.mutate({ datasetId, metrics: [...METRIC_CODES], framesPerEpisode: 6, imageEncoderVersionId: encoder || null })}>{running ? "Scoring…" : "Evaluate"}</Button>
            </>
          ) : undefined
        }
      />
      <CardBody className="space-y-3 text-sm">
        {start.error && <Alert>{errorMessage(start.error)}</Alert>}
        {running?.jobId && <p className="text-zinc-500">Scoring under way — <Link href={`/jobs/${running.jobId}`} className="underline">follow the job</Link>.</p>}
        {latest ? (
          <>
            <p>
              Overall <span className="text-lg font-semibold tabular-nums" data-testid="dataset-score">{scoreText(latest.overall)}</span>{" "}
              <Link href={`/datasets/${datasetId}/evaluations/${latest.id}`} className="text-brand-600 underline">report</Link>
            </p>
            <dl className="grid grid-cols-2 gap-x-4 gap-y-1 sm:grid-cols-3">
              {METRIC_CODES.filter((c) => latest.scores && c in latest.scores).map((c) => (
                <div key={c} className="flex justify-between gap-2"><dt className="text-zinc-500">{METRIC_NAMES[c]}</dt><dd className="tabular-nums">{scoreText(latest.scores![c])}</dd></div>
              ))}
            </dl>
          </>
        ) : (
          !running && <p className="text-zinc-500">Not scored yet.</p>
        )}
        {list.data?.[0]?.status === "failed" && <Alert>The last scoring failed: {list.data[0].error}</Alert>}
      </CardBody>
    </Card>
  );
}
