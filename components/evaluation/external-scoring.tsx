"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { cn } from "@/components/ui/cn";
import { TextField } from "@/components/ui/field";
import { RelativeTime } from "@/components/ui/time";
import { JobProgress } from "@/components/jobs/job-status";
import { errorMessage, useTRPC } from "@/components/trpc";
import { METRIC_CODES, METRIC_NAMES, type MetricCode } from "@/server/evaluation/evaluation.schemas";
import { scoreText } from "./dataset-quality";
import { SourceText } from "./evaluation-report";

// Scoring a dataset Gantry does not hold: a LeRobot folder on the server or a dataset on the
// hub. The form starts the scoring; the list below follows it to its report.

const isRunning = (status: string) => status === "queued" || status === "running";

/** The form: where the dataset is, which metrics, how many frames per episode. */
export function ExternalScoringForm({ onStarted }: { onStarted?: (evaluationId: string) => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [kind, setKind] = useState<"folder" | "hub">("folder");
  const [metrics, setMetrics] = useState<MetricCode[]>([...METRIC_CODES]);
  const start = useMutation(
    trpc.evaluation.startExternal.mutationOptions({
      onSuccess: ({ evaluationId }) => onStarted?.(evaluationId),
      onSettled: () => queryClient.invalidateQueries({ queryKey: trpc.evaluation.listExternal.queryKey() }),
    }),
  );
  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const source = kind === "folder" ? { kind, path: String(form.get("path")) } : { kind, repo: String(form.get("repo")), revision: String(form.get("revision") ?? "") };
    start.mutate({ source, metrics, framesPerEpisode: Number(form.get("framesPerEpisode")) || 6 });
  };
  return (
    <form onSubmit={onSubmit} className="grid gap-4 sm:grid-cols-2" data-testid="external-scoring-form">
      <div className="flex gap-2 sm:col-span-2" role="radiogroup" aria-label="Dataset from">
        {(["folder", "hub"] as const).map((s) => (
          <button key={s} type="button" role="radio" aria-checked={kind === s} onClick={() => setKind(s)}
            className={cn("rounded-md border px-3 py-1.5 text-sm", kind === s ? "border-brand-500 bg-brand-50 text-brand-700 dark:bg-brand-700/20 dark:text-brand-500" : "border-zinc-300 dark:border-zinc-700")}>
            {s === "folder" ? "Folder on the server" : "Hugging Face dataset"}
          </button>
        ))}
      </div>
      {kind === "folder" ? (
        <TextField key="path" label="Folder" name="path" required className="sm:col-span-2" placeholder="/srv/datasets/so101" hint="A LeRobot v2.0, v2.1 or v3.0 dataset inside DATASET_IMPORT_ROOTS; it is read where it is, not copied" />
      ) : (
        <>
          <TextField key="repo" label="Dataset id" name="repo" required placeholder="lerobot/svla_so101_pickplace" hint="owner/name on the hub (HF_ENDPOINT); public datasets only" />
          <TextField key="revision" label="Revision" name="revision" placeholder="main" hint="A branch, tag or commit; main when empty" />
        </>
      )}
      <fieldset className="space-y-1.5 sm:col-span-2">
        <legend className="text-sm font-medium">Metrics</legend>
        <div className="flex flex-wrap gap-x-4 gap-y-1">
          {METRIC_CODES.map((c) => (
            <label key={c} className="flex items-center gap-2 text-sm">
              <input type="checkbox" checked={metrics.includes(c)} onChange={(ev) => setMetrics((old) => METRIC_CODES.filter((x) => (x === c ? ev.target.checked : old.includes(x))))} />
              {METRIC_NAMES[c]} ({c})
            </label>
          ))}
        </div>
        <p className="text-xs text-zinc-500">The visual metrics (v, h) read the videos: from the hub, that means fetching them.</p>
      </fieldset>
      <TextField label="Frames per episode" name="framesPerEpisode" type="number" min={1} max={32} defaultValue={6} hint="Sampled from each camera for the visual metrics" />
      {start.error && <Alert className="sm:col-span-2">{errorMessage(start.error)}</Alert>}
      <div className="sm:col-span-2">
        <Button type="submit" disabled={start.isPending || metrics.length === 0}>{start.isPending ? "Starting…" : "Score dataset"}</Button>
      </div>
    </form>
  );
}

function RunningJob({ jobId }: { jobId: string }) {
  const trpc = useTRPC();
  const job = useQuery({ ...trpc.jobs.get.queryOptions({ jobId }), refetchInterval: 1_000 });
  if (!job.data) return null;
  return (
    <div className="flex items-center gap-3">
      <JobProgress job={job.data} />
      <span className="text-xs text-zinc-500">{job.data.step}</span>
    </div>
  );
}

/** Scorings of datasets Gantry does not hold, newest first, each to its report. */
export function ExternalScorings() {
  const trpc = useTRPC();
  const list = useQuery({ ...trpc.evaluation.listExternal.queryOptions(), refetchInterval: (q) => (q.state.data?.some((e) => isRunning(e.status)) ? 1_000 : false) });
  if (list.error) return <Alert className="mb-4">{errorMessage(list.error)}</Alert>;
  if (!list.data?.length) return null;
  return (
    <Card className="mb-6" data-testid="external-scorings">
      <CardHeader title="Datasets scored where they are" description="Folders on the server and hub datasets, scored without importing them." />
      <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
        {list.data.map((e) => (
          <li key={e.id} data-evaluation={e.id} className="flex flex-wrap items-center gap-4 px-5 py-3 text-sm">
            <div className="min-w-0 flex-1">
              <p className="font-medium"><SourceText source={e.source} /></p>
              <p className="text-xs text-zinc-500">{e.metrics.join(", ")} · started <RelativeTime date={e.createdAt} /></p>
              {e.status === "failed" && <p className="mt-1 text-red-700 dark:text-red-400">{e.error}</p>}
            </div>
            {isRunning(e.status) && e.jobId && <RunningJob jobId={e.jobId} />}
            {e.status === "succeeded" && <span>Overall <span className="font-semibold tabular-nums">{scoreText(e.overall)}</span></span>}
            <Badge tone={e.status === "succeeded" ? "green" : e.status === "failed" ? "red" : e.status === "cancelled" ? "amber" : "blue"}>{e.status}</Badge>
            <Link href={`/datasets/scores/${e.id}`} className="text-brand-600 underline">report</Link>
          </li>
        ))}
      </ul>
    </Card>
  );
}
