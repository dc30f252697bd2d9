"use client";

import { useMutation, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { cn } from "@/components/ui/cn";
import { TextField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { ProgressBar } from "@/components/ui/progress-bar";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, getTabOrg, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";

/** Streams the archive as the request body, with upload progress (fetch cannot report it). */
function uploadArchive(repoId: string, file: File, onProgress: (f: number) => void): Promise<{ datasetId: string }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/datasets/import?${new URLSearchParams({ repoId, filename: file.name })}`);
    const org = getTabOrg();
    if (org) xhr.setRequestHeader("x-gantry-org", org);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      try {
        const body = JSON.parse(xhr.responseText);
        if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
        reject(new Error(body.error?.message ?? `The upload failed (${xhr.status})`));
      } catch {
        reject(new Error(`The upload failed (${xhr.status})`));
      }
    };
    xhr.onerror = () => reject(new Error("The upload was interrupted; check the connection and try again"));
    xhr.send(file);
  });
}

function ImportForm({ onDone }: { onDone: (datasetId: string) => void }) {
  const trpc = useTRPC();
  const [source, setSource] = useState<"archive" | "folder">("archive");
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const importFolder = useMutation(trpc.datasets.importFolder.mutationOptions({ onSuccess: ({ datasetId }) => onDone(datasetId) }));

  const onSubmit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    setError(null);
    const form = new FormData(e.currentTarget);
    const repoId = String(form.get("repoId")).trim();
    if (source === "folder") return importFolder.mutate({ repoId, path: String(form.get("path")) });
    const file = form.get("archive");
    if (!(file instanceof File) || !file.size) return setError("Choose a .tar.gz or .zip of the dataset folder");
    setProgress(0);
    try {
      const { datasetId } = await uploadArchive(repoId, file, setProgress);
      onDone(datasetId);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setProgress(null);
    }
  };

  return (
    <form onSubmit={onSubmit} className="grid gap-4 sm:grid-cols-2">
      <div className="flex gap-2 sm:col-span-2" role="radiogroup" aria-label="Import from">
        {(["archive", "folder"] as const).map((s) => (
          <button key={s} type="button" role="radio" aria-checked={source === s} onClick={() => setSource(s)}
            className={cn("rounded-md border px-3 py-1.5 text-sm", source === s ? "border-brand-500 bg-brand-50 text-brand-700 dark:bg-brand-700/20 dark:text-brand-500" : "border-zinc-300 dark:border-zinc-700")}>
            {s === "archive" ? "Upload an archive" : "Folder on the server"}
          </button>
        ))}
      </div>
      <TextField label="Repo id" name="repoId" required maxLength={193} placeholder="e.g. lab/so101-pick-cube" hint="name or owner/name, as on the hub" />
      {source === "archive" ? (
        <div className="space-y-1.5">
          <label htmlFor="dataset-archive" className="block text-sm font-medium">Archive</label>
          <input id="dataset-archive" name="archive" type="file" accept=".tar.gz,.tgz,.zip,application/gzip,application/zip" className="block w-full text-sm" />
          <p className="text-xs text-zinc-500">A .tar.gz or .zip of a LeRobot v2.1 or v3.0 dataset folder.</p>
        </div>
      ) : (
        <TextField label="Folder" name="path" required placeholder="/srv/datasets/so101" hint="Must be inside DATASET_IMPORT_ROOTS" />
      )}
      {progress !== null && <ProgressBar value={progress} label="Upload progress" className="sm:col-span-2" />}
      {(error || importFolder.error) && <Alert className="sm:col-span-2">{error ?? errorMessage(importFolder.error)}</Alert>}
      <div className="sm:col-span-2">
        <Button type="submit" disabled={progress !== null || importFolder.isPending}>{progress !== null ? `Uploading… ${Math.round(progress * 100)}%` : "Import dataset"}</Button>
      </div>
    </form>
  );
}

/** What a deletion just did, from the page's address (?deleted=<repo id>&left=<n>). */
function DeletedNotice({ repoId, left }: { repoId: string; left: number }) {
  const router = useRouter();
  return (
    <Alert tone="green" className="mb-4" title={`Deleted ${repoId}`}>
      <div className="flex flex-wrap items-center justify-between gap-2">
        <span>
          Its episodes, its folder and its raw episodes are gone.
          {left > 0 && ` ${left} of its folders ${left === 1 ? "is" : "are"} a link out of Gantry's own folders and ${left === 1 ? "was" : "were"} left in place; the audit log names ${left === 1 ? "it" : "them"}.`}
        </span>
        <Button size="sm" variant="ghost" onClick={() => router.replace("/datasets")}>Dismiss</Button>
      </div>
    </Alert>
  );
}

export function DatasetsPage({ deleted }: { deleted?: { repoId: string; left: number } }) {
  const trpc = useTRPC();
  const router = useRouter();
  const { can } = useRole();
  const datasets = useQuery({ ...trpc.datasets.list.queryOptions(), refetchInterval: (q) => (q.state.data?.some((d) => d.episodes.encoding > 0) ? 3000 : false) });
  const [isImportOpen, setImportOpen] = useState(false);

  return (
    <>
      <PageHeader
        title="Datasets"
        description="Episodes recorded at the edge, encoded here and kept as LeRobot v3.0 datasets. Import existing ones, export any as .tar.gz."
        actions={can("operator") && <Button onClick={() => setImportOpen((v) => !v)} aria-expanded={isImportOpen}>Import dataset</Button>}
      />
      {isImportOpen && (
        <Card className="mb-6">
          <CardHeader title="Import a LeRobot dataset" description="v2.1 and v3.0 datasets are copied in and rewritten in v3.0's layout." />
          <CardBody>
            <ImportForm onDone={(id) => router.push(`/datasets/${id}`)} />
          </CardBody>
        </Card>
      )}
      {deleted && <DeletedNotice repoId={deleted.repoId} left={deleted.left} />}
      {datasets.error && <Alert className="mb-4">{errorMessage(datasets.error)}</Alert>}
      <Card>
        {datasets.data?.length === 0 && (
          <p className="px-5 py-10 text-center text-sm text-zinc-500">No datasets yet. Upload episodes with <code>gantry-agent upload</code>, or import a dataset.</p>
        )}
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {datasets.data?.map((d) => (
            <li key={d.id} data-dataset={d.repoId} className="flex flex-wrap items-center gap-4 px-5 py-4">
              <div className="min-w-0 flex-1">
                <Link href={`/datasets/${d.id}`} className="font-medium text-brand-600 hover:underline dark:text-brand-500">{d.repoId}</Link>
                <p className="text-sm text-zinc-500">
                  {d.cameras.length ? d.cameras.join(", ") : "no cameras"}
                  {d.fps ? ` · ${d.fps} fps` : ""}
                  {d.robotType ? ` · ${d.robotType}` : ""}
                </p>
              </div>
              {d.source === "import" && <Badge>imported {d.importedVersion}</Badge>}
              {d.missingVideos.length > 0 && <Badge tone="amber">videos missing</Badge>}
              <span className="text-sm text-zinc-500">{d.episodes.ready} episode{d.episodes.ready === 1 ? "" : "s"} · {d.totalFrames} frames</span>
              {d.episodes.encoding > 0 && <Badge tone="blue">{d.episodes.encoding} encoding</Badge>}
              {d.episodes.failed > 0 && <Badge tone="red">{d.episodes.failed} failed</Badge>}
              <span className="text-sm text-zinc-500">created <RelativeTime date={d.createdAt} /></span>
            </li>
          ))}
        </ul>
      </Card>
    </>
  );
}
