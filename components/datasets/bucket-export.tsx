"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useEffect, useState } from "react";
import { onLiveJobEvent } from "@/components/jobs/use-live-jobs";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { TextField } from "@/components/ui/field";
import { ProgressBar } from "@/components/ui/progress-bar";
import { errorMessage, useTRPC } from "@/components/trpc";

const mib = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MiB`;

/** Writes the dataset's build to the instance's bucket as a plain LeRobot v3.0 tree, with live progress. */
export function BucketExportCard({ datasetId, canWrite }: { datasetId: string; canWrite: boolean }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const queryKey = trpc.datasets.bucketExport.queryKey({ datasetId });
  const status = useQuery({
    ...trpc.datasets.bucketExport.queryOptions({ datasetId }),
    refetchInterval: (q) => (["queued", "running"].includes(q.state.data?.job?.status ?? "") ? 5000 : false),
  });
  const [folder, setFolder] = useState("");
  const [live, setLive] = useState<number | null>(null);
  const jobId = status.data?.job?.id;
  useEffect(() => {
    if (!jobId) return;
    return onLiveJobEvent((e) => {
      if (e.jobId !== jobId) return;
      if (e.progress !== null && e.progress !== undefined) setLive(e.progress);
      if (e.status) void queryClient.invalidateQueries({ queryKey });
    });
  }, [jobId, queryClient, queryKey]);
  const start = useMutation(
    trpc.datasets.exportToBucket.mutationOptions({
      onSuccess: () => {
        setLive(0);
        void queryClient.invalidateQueries({ queryKey });
      },
    }),
  );

  const s = status.data;
  if (!s || !s.hasBucket) return null;
  const job = s.job;
  const busy = job !== null && ["queued", "running"].includes(job.status);
  return (
    <Card data-testid="bucket-export">
      <CardHeader title="Bucket" description={<>A plain LeRobot v3.0 tree that LeRobot and the Hugging Face tools read from S3. Without a folder it goes to <code className="text-xs">{s.defaultUrl}</code>.</>} />
      <CardBody className="space-y-3">
        {canWrite && (
          <form
            className="flex flex-wrap items-end gap-3"
            onSubmit={(e) => {
              e.preventDefault();
              start.mutate({ datasetId, ...(folder.trim() ? { folder: folder.trim() } : {}) });
            }}
          >
            <TextField label="Folder (optional)" placeholder="team/pick-place-v2" value={folder} onChange={(e) => setFolder(e.target.value)} className="min-w-64 flex-1" hint="Names of letters, digits, . _ -, joined by /; inside your organisation's part of the bucket" />
            <Button type="submit" disabled={busy || start.isPending}>{busy ? "Writing…" : "Write to bucket"}</Button>
          </form>
        )}
        {start.error && <Alert>{errorMessage(start.error)}</Alert>}
        {job && busy && <ProgressBar value={live ?? job.progress} label="Writing to the bucket" />}
        {job && busy && job.step && <p className="text-xs text-zinc-500">{job.step}</p>}
        {job?.status === "succeeded" && job.result && (
          <p className="text-sm" data-testid="bucket-export-result">
            Written to <code className="text-xs">{job.result.url}</code>: {job.result.files} files, {mib(job.result.bytes)} ({job.result.written} written, {job.result.skipped} already there).
          </p>
        )}
        {job && ["failed", "cancelled"].includes(job.status) && <Alert>{job.error ?? "The export was cancelled"}: what was written stays and is skipped by the next try.</Alert>}
        {job && <Link href={`/jobs/${job.id}`} className="text-sm text-brand-600 hover:underline dark:text-brand-500">Job log</Link>}
      </CardBody>
    </Card>
  );
}
