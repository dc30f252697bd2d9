"use client";

import { DatasetQuality } from "@/components/evaluation/dataset-quality";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useEffect, useRef, useState } from "react";
import { onLiveJobEvent } from "@/components/jobs/use-live-jobs";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { ProgressBar } from "@/components/ui/progress-bar";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { BucketExportCard } from "./bucket-export";
import { DeleteDatasetButton } from "./delete-dataset-dialog";
import { EpisodeStatus, formatSeconds } from "./episode-status";

function TaskRow({ datasetId, text, episodes, canEdit }: { datasetId: string; text: string; episodes: number; canEdit: boolean }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [draft, setDraft] = useState<string | null>(null);
  const rename = useMutation(
    trpc.datasets.renameTask.mutationOptions({
      onSuccess: () => {
        setDraft(null);
        void queryClient.invalidateQueries({ queryKey: trpc.datasets.get.queryKey({ datasetId }) });
      },
    }),
  );
  return (
    <li className="flex flex-wrap items-center gap-3 py-2" data-task={text}>
      {draft === null ? (
        <>
          <span className="min-w-0 flex-1 text-sm">{text || <em className="text-zinc-400">no task</em>}</span>
          <span className="text-sm text-zinc-500">{episodes} episode{episodes === 1 ? "" : "s"}</span>
          {canEdit && <Button size="sm" variant="ghost" onClick={() => setDraft(text)}>Edit</Button>}
        </>
      ) : (
        <form className="flex flex-1 flex-wrap items-center gap-2" onSubmit={(e) => { e.preventDefault(); rename.mutate({ datasetId, from: text, to: draft }); }}>
          <input aria-label="Task text" value={draft} onChange={(e) => setDraft(e.target.value)} maxLength={2000} required
            className="h-8 min-w-64 flex-1 rounded-md border border-zinc-300 bg-white px-2 text-sm dark:border-zinc-700 dark:bg-zinc-950" />
          <Button size="sm" type="submit" disabled={rename.isPending}>{rename.isPending ? "Rewriting…" : "Save"}</Button>
          <Button size="sm" variant="ghost" onClick={() => setDraft(null)}>Cancel</Button>
          {rename.error && <Alert className="w-full">{errorMessage(rename.error)}</Alert>}
        </form>
      )}
    </li>
  );
}

export function DatasetDetail({ datasetId }: { datasetId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { can } = useRole();
  const queryKey = trpc.datasets.get.queryKey({ datasetId });
  const dataset = useQuery({
    ...trpc.datasets.get.queryOptions({ datasetId }),
    // Live job events below move the bars; this catches anything they miss.
    refetchInterval: (q) => (q.state.data && (q.state.data.episodes.encoding > 0 || ["queued", "running"].includes(q.state.data.importJob?.status ?? "")) ? 5000 : false),
  });
  // Encoding progress straight from the organisation's job events.
  const [live, setLive] = useState<Record<string, number>>({});
  const jobIds = useRef(new Set<string>());
  useEffect(() => {
    const d = dataset.data;
    jobIds.current = new Set([...(d?.episodeList.map((e) => e.jobId) ?? []), d?.importJob?.id].filter((id): id is string => Boolean(id)));
  }, [dataset.data]);
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    return onLiveJobEvent((e) => {
      if (!jobIds.current.has(e.jobId)) return;
      if (e.progress !== null && e.progress !== undefined) setLive((old) => ({ ...old, [e.jobId]: e.progress! }));
      if (e.status && !timer) {
        timer = setTimeout(() => {
          timer = null;
          void queryClient.invalidateQueries({ queryKey });
        }, 200);
      }
    });
  }, [queryClient, queryKey]);
  const invalidate = () => queryClient.invalidateQueries({ queryKey });
  const del = useMutation(trpc.datasets.deleteEpisode.mutationOptions({ onSuccess: invalidate }));
  const restore = useMutation(trpc.datasets.restoreEpisode.mutationOptions({ onSuccess: invalidate }));
  const retry = useMutation(trpc.datasets.retryEpisode.mutationOptions({ onSuccess: invalidate }));
  const actionError = del.error ?? restore.error ?? retry.error;

  if (dataset.error) return <Alert>{errorMessage(dataset.error)}</Alert>;
  const d = dataset.data;
  if (!d) return <p className="text-sm text-zinc-500">Loading…</p>;
  const importing = d.importJob && ["queued", "running"].includes(d.importJob.status);
  const keyOf = (camera: string) => d.featureMap?.cameras.find((c) => c.camera === camera)?.key ?? `observation.images.${camera}`;
  const numbers = (list: number[]) => (list.length <= 1 ? list.join("") : `${list.slice(0, -1).join(", ")} and ${list.at(-1)}`);

  return (
    <>
      <PageHeader
        title={d.repoId}
        description={
          <>
            LeRobot v3.0{d.source === "import" ? `, imported from ${d.importedVersion ?? "a dataset"}` : d.source === "derived" ? `, derived: ${d.description}` : ", from edge episodes"}
            {d.fps ? ` · ${d.fps} fps` : ""}{d.robotType ? ` · ${d.robotType}` : ""} · {d.episodes.ready} episode{d.episodes.ready === 1 ? "" : "s"} · {d.totalFrames} frames
          </>
        }
        actions={
          <>
            {can("operator") && d.builtAt && d.episodes.ready > 0 && <Link href={`/training/new?dataset=${d.id}`} className="inline-flex h-10 items-center rounded-md bg-brand-600 px-4 text-sm font-medium text-white hover:bg-brand-700">Train</Link>}
            {d.builtAt && d.episodes.ready > 0 && <a href={`/api/datasets/${d.id}/export`} download className="inline-flex h-10 items-center rounded-md border border-zinc-300 bg-white px-4 text-sm font-medium hover:bg-zinc-100 dark:border-zinc-700 dark:bg-zinc-900 dark:hover:bg-zinc-800">Export .tar.gz</a>}
            {can("admin") && <DeleteDatasetButton datasetId={d.id} repoId={d.repoId} episodes={d.episodeList.length} isBusy={d.episodes.encoding > 0 || Boolean(importing)} />}
          </>
        }
      />
      {d.missingVideos.length > 0 && (
        <Alert tone="amber" className="mb-4" title="This dataset's videos are missing">
          The imported dataset came without {d.missingVideos.join(" and ")}. Its joints are here and plot; its cameras cannot play, and training needs the videos.
          The dataset&apos;s files (export, training) leave {d.missingVideos.length === 1 ? "this camera" : "these cameras"} out rather than name videos they do not hold.
        </Alert>
      )}
      {d.episodesWithoutVideo.length > 0 && (
        <Alert tone="amber" className="mb-4" title={`${d.episodesWithoutVideo.length} episode${d.episodesWithoutVideo.length === 1 ? " has" : "s have"} no video`}>
          Recorded episode{d.episodesWithoutVideo.length === 1 ? "" : "s"} {numbers(d.episodesWithoutVideo)} came without the video of a camera the other episodes have.
          {d.episodesWithoutVideo.length === 1 ? " It is" : " They are"} kept here with {d.episodesWithoutVideo.length === 1 ? "its" : "their"} joints, but left out of the dataset&apos;s files (export and training), which need every camera&apos;s video for every episode.
        </Alert>
      )}
      {d.importJob && (importing || d.importJob.status === "failed") && (
        <Card className="mb-4" data-testid="import-job">
          <CardBody className="space-y-2">
            <p className="text-sm font-medium">{importing ? `Importing… ${d.importJob.step ?? ""}` : "The import failed: nothing of it was kept. Import the dataset again under the same repo id, or delete this one."}</p>
            {importing && <ProgressBar value={live[d.importJob.id] ?? d.importJob.progress} label="Import progress" />}
            {d.importJob.error && <Alert>{d.importJob.error}</Alert>}
            <Link href={`/jobs/${d.importJob.id}`} className="text-sm text-brand-600 hover:underline dark:text-brand-500">Job log</Link>
          </CardBody>
        </Card>
      )}
      {actionError && <Alert className="mb-4">{errorMessage(actionError)}</Alert>}

      <div className="space-y-6">
        {d.builtAt && d.episodes.ready > 0 && <BucketExportCard datasetId={d.id} canWrite={can("operator")} />}
        <Card>
          <CardHeader title="Episodes" description={`${d.episodes.ready} in the dataset${d.episodes.encoding ? `, ${d.episodes.encoding} encoding` : ""}${d.episodes.failed ? `, ${d.episodes.failed} failed` : ""}${d.episodes.deleted ? `, ${d.episodes.deleted} deleted` : ""}`} />
          {d.episodeList.length === 0 && <p className="px-5 py-8 text-center text-sm text-zinc-500">No episodes yet.</p>}
          {d.episodeList.length > 0 && (
            <div className="overflow-x-auto">
              <table className="w-full text-sm">
                <thead className="border-b border-zinc-200 text-left text-xs uppercase text-zinc-500 dark:border-zinc-800">
                  <tr>
                    <th className="px-5 py-2 font-medium">Episode</th>
                    <th className="px-3 py-2 font-medium">Task</th>
                    <th className="px-3 py-2 text-right font-medium">Frames</th>
                    <th className="px-3 py-2 text-right font-medium">Duration</th>
                    <th className="px-3 py-2 font-medium">Cameras</th>
                    <th className="px-3 py-2 font-medium">Status</th>
                    <th className="px-5 py-2" />
                  </tr>
                </thead>
                <tbody className="divide-y divide-zinc-100 dark:divide-zinc-800">
                  {d.episodeList.map((e) => (
                    <tr key={e.id} data-episode={e.number} className={e.deletedAt ? "text-zinc-400" : undefined}>
                      <td className="px-5 py-2 tabular-nums">
                        {e.status === "ready" ? (
                          <Link href={`/datasets/${d.id}/episodes/${e.id}`} className="font-medium text-brand-600 hover:underline dark:text-brand-500">
                            {e.datasetIndex !== null ? `#${e.datasetIndex}` : `recorded ${e.number}`}
                          </Link>
                        ) : `recorded ${e.number}`}
                      </td>
                      <td className="max-w-72 truncate px-3 py-2" title={e.task}>{e.task || "—"}</td>
                      <td className="px-3 py-2 text-right tabular-nums">{e.length ?? "—"}</td>
                      <td className="px-3 py-2 text-right tabular-nums">{formatSeconds(e.durationS)}</td>
                      <td className="px-3 py-2">
                        {e.cameras.join(", ") || (!e.missingVideos.length && d.missingVideos.length ? <span className="text-amber-700 dark:text-amber-400">videos missing</span> : e.missingVideos.length ? "" : "—")}
                        {e.missingVideos.length > 0 && <span className="text-amber-700 dark:text-amber-400" data-field="missing-video">{e.cameras.length ? "; " : ""}no video: {e.missingVideos.join(", ")}</span>}
                      </td>
                      <td className="px-3 py-2">
                        <EpisodeStatus status={e.status} progress={e.jobId ? (live[e.jobId] ?? e.jobProgress) : importing && e.mode === "import" ? (live[d.importJob!.id] ?? d.importJob!.progress) : null} isDeleted={Boolean(e.deletedAt)} />
                        {e.status === "failed" && e.error && <p className="mt-1 max-w-72 text-xs text-red-600 dark:text-red-400" data-field="episode-error">{e.error}</p>}
                      </td>
                      <td className="px-5 py-2 text-right">
                        {can("operator") && e.status === "failed" && e.mode !== "import" && <Button size="sm" variant="secondary" disabled={retry.isPending} onClick={() => retry.mutate({ episodeId: e.id })}>Retry</Button>}
                        {can("operator") && e.status === "ready" && !e.deletedAt && (
                          <Button size="sm" variant="ghost" disabled={del.isPending} onClick={() => confirm(`Take episode #${e.datasetIndex} out of the dataset? The dataset is rewritten without it; you can restore it.`) && del.mutate({ episodeId: e.id })}>Delete</Button>
                        )}
                        {can("operator") && e.deletedAt && <Button size="sm" variant="secondary" disabled={restore.isPending} onClick={() => restore.mutate({ episodeId: e.id })}>Restore</Button>}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Card>
        <DatasetQuality datasetId={d.id} canScore={Boolean(d.builtAt) && d.episodes.ready > 0} />
        <div className="grid gap-6 lg:grid-cols-2">
          <Card>
            <CardHeader title="Tasks" description="What each episode shows; editing rewrites the dataset." />
            <CardBody>
              <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
                {d.tasks.map((t) => <TaskRow key={t.text} datasetId={d.id} text={t.text} episodes={t.episodes} canEdit={can("operator")} />)}
              </ul>
            </CardBody>
          </Card>
          <Card>
            <CardHeader title="Features" />
            <CardBody className="space-y-2 text-sm">
              <p><span className="text-zinc-500">Cameras:</span> {d.cameras.map((c) => <Badge key={c} className="mr-1" tone={d.missingVideos.includes(keyOf(c)) ? "amber" : "neutral"}>{c}{keyOf(c) !== c && keyOf(c) !== `observation.images.${c}` ? ` (${keyOf(c)})` : ""}</Badge>)}</p>
              <p><span className="text-zinc-500">Joints:</span> {d.jointNames.state.join(", ") || "—"}</p>
              {d.featureMap && (d.featureMap.action !== "action" || d.featureMap.state !== "observation.state") && (
                <p><span className="text-zinc-500">Named in this dataset:</span> action <code>{d.featureMap.action}</code>, state <code>{d.featureMap.state}</code></p>
              )}
              {d.featureMap && d.featureMap.dropped.length > 0 && (
                <div data-testid="dropped-features">
                  <p className="text-zinc-500">Left out at import:</p>
                  <ul className="list-disc pl-5">{d.featureMap.dropped.map((f) => <li key={f.key}><code>{f.key}</code>: {f.reason}</li>)}</ul>
                </div>
              )}
            </CardBody>
          </Card>
        </div>
      </div>
    </>
  );
}
