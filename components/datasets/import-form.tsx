"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import type { ImportInspection as Inspection } from "@/server/datasets/datasets.schemas";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { cn } from "@/components/ui/cn";
import { SelectField, TextField } from "@/components/ui/field";
import { ProgressBar } from "@/components/ui/progress-bar";
import { errorMessage, getTabOrg, useTRPC } from "@/components/trpc";

type Mapping = { action: string; state: string; cameras: string[] };
type Pending = { repoId: string; inspection: Inspection } & ({ kind: "folder"; path: string } | { kind: "staged"; stagingId: string });
type UploadResult = { datasetId: string } | { staged: { stagingId: string; inspection: Inspection } };

/** Streams the archive as the request body, with upload progress (fetch cannot report it). */
function uploadArchive(repoId: string, file: File, onProgress: (f: number) => void): Promise<UploadResult> {
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

const describeFeature = (f: Inspection["features"][number]) => `${f.key} — ${f.dtype}${f.shape.length ? ` [${f.shape.join(", ")}]` : ""}${f.names?.length ? `: ${f.names.slice(0, 4).join(", ")}${f.names.length > 4 ? ", …" : ""}` : ""}`;

/** Which features are the action, the state and the cameras, as proposed; the person confirms or changes it. */
function MappingForm({ pending, isBusy, onImport, onCancel }: { pending: Pending; isBusy: boolean; onImport: (m: Mapping) => void; onCancel: () => void }) {
  const { inspection } = pending;
  const [action, setAction] = useState(inspection.proposed.action ?? "");
  const [state, setState] = useState(inspection.proposed.state ?? "");
  const [cameras, setCameras] = useState<string[]>(inspection.proposed.cameras);
  const byKey = new Map(inspection.features.map((f) => [f.key, f]));
  const options = (keys: string[]) => [{ value: "", label: "Choose a feature…" }, ...keys.map((k) => ({ value: k, label: describeFeature(byKey.get(k)!) }))];
  const videos = inspection.features.filter((f) => f.dtype === "video");
  const problem = !action || !state ? "Choose the features that hold the action and the state." : action === state ? "The action and the state must be two different features." : null;
  const unchosen = videos.filter((v) => !cameras.includes(v.key)).map((v) => v.key);
  const dropped = [...inspection.dropped.filter((d) => !videos.some((v) => v.key === d.key)), ...unchosen.map((key) => ({ key, reason: "a camera left out at import" }))];

  return (
    <form className="space-y-4 sm:col-span-2" data-testid="import-mapping" onSubmit={(e) => { e.preventDefault(); if (!problem) onImport({ action, state, cameras }); }}>
      <p className="text-sm">
        {inspection.needsConfirmation && (inspection.proposed.action === null || inspection.proposed.state === null)
          ? "Gantry could not tell which features hold the joints: choose them below."
          : "This dataset names its features its own way. Check what Gantry proposes; the dataset keeps its own names."}
        {" "}LeRobot {inspection.version}{inspection.episodes !== null ? `, ${inspection.episodes} episodes` : ""}{inspection.fps ? `, ${inspection.fps} fps` : ""}.
      </p>
      <div className="grid gap-4 sm:grid-cols-2">
        <SelectField label="Action (what the robot was told)" value={action} onChange={(e) => setAction(e.target.value)} options={options(inspection.candidates.action)} />
        <SelectField label="State (what the robot measured)" value={state} onChange={(e) => setState(e.target.value)} options={options(inspection.candidates.state)} />
      </div>
      <fieldset className="space-y-1.5">
        <legend className="text-sm font-medium">Cameras (video features)</legend>
        {videos.length === 0 && <p className="text-sm text-zinc-500">The dataset has no video features.</p>}
        {videos.map((v) => (
          <label key={v.key} className="flex items-center gap-2 text-sm">
            <input type="checkbox" checked={cameras.includes(v.key)} onChange={(e) => setCameras((old) => (e.target.checked ? videoOrder(videos, [...old, v.key]) : old.filter((k) => k !== v.key)))} />
            {describeFeature(v)}
          </label>
        ))}
      </fieldset>
      {dropped.length > 0 && (
        <Alert tone="amber" title="Left out of the import">
          <ul className="list-disc pl-5">{dropped.map((d) => <li key={d.key}><code>{d.key}</code>: {d.reason}</li>)}</ul>
        </Alert>
      )}
      {problem && <p className="text-sm text-amber-700 dark:text-amber-400">{problem}</p>}
      <div className="flex gap-2">
        <Button type="submit" disabled={Boolean(problem) || isBusy}>{isBusy ? "Starting…" : "Import with this mapping"}</Button>
        <Button variant="ghost" onClick={onCancel}>Cancel</Button>
      </div>
    </form>
  );
}

const videoOrder = (videos: Array<{ key: string }>, keys: string[]) => videos.map((v) => v.key).filter((k) => keys.includes(k));

export function ImportForm({ onDone }: { onDone: (datasetId: string) => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [source, setSource] = useState<"archive" | "folder">("archive");
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [isChecking, setChecking] = useState(false);
  const started = { onSuccess: ({ datasetId }: { datasetId: string }) => onDone(datasetId) };
  const importFolder = useMutation(trpc.datasetImports.importFolder.mutationOptions(started));
  const importStaged = useMutation(trpc.datasetImports.importStaged.mutationOptions(started));
  // An upload left staged is thrown away by itself after a day; a failed discard says so.
  const discardStaged = useMutation(trpc.datasetImports.discardStaged.mutationOptions({ onError: (err) => setError(`The uploaded archive was not thrown away (${errorMessage(err)}); Gantry deletes it by itself within a day`) }));
  const mutationError = importFolder.error ?? importStaged.error;

  const onSubmit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    setError(null);
    const form = new FormData(e.currentTarget);
    const repoId = String(form.get("repoId")).trim();
    if (source === "folder") {
      const path = String(form.get("path"));
      setChecking(true);
      try {
        const inspection = await queryClient.fetchQuery(trpc.datasetImports.inspectFolder.queryOptions({ path }, { staleTime: 0 }));
        if (inspection.needsConfirmation) setPending({ kind: "folder", path, repoId, inspection });
        else importFolder.mutate({ repoId, path });
      } catch (err) {
        setError(errorMessage(err));
      } finally {
        setChecking(false);
      }
      return;
    }
    const file = form.get("archive");
    if (!(file instanceof File) || !file.size) return setError("Choose a .tar.gz or .zip of the dataset folder");
    setProgress(0);
    try {
      const result = await uploadArchive(repoId, file, setProgress);
      if ("staged" in result) setPending({ kind: "staged", repoId, stagingId: result.staged.stagingId, inspection: result.staged.inspection });
      else onDone(result.datasetId);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setProgress(null);
    }
  };

  if (pending) {
    return (
      <div className="space-y-3">
        <MappingForm
          pending={pending}
          isBusy={importFolder.isPending || importStaged.isPending}
          onImport={(mapping) => (pending.kind === "folder" ? importFolder.mutate({ repoId: pending.repoId, path: pending.path, mapping }) : importStaged.mutate({ repoId: pending.repoId, stagingId: pending.stagingId, mapping }))}
          onCancel={() => {
            if (pending.kind === "staged") discardStaged.mutate({ stagingId: pending.stagingId });
            setPending(null);
          }}
        />
        {mutationError && <Alert>{errorMessage(mutationError)}</Alert>}
      </div>
    );
  }

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
          <p className="text-xs text-zinc-500">A .tar.gz or .zip of a LeRobot v2.0, v2.1 or v3.0 dataset folder. If its features have names of their own, you confirm which are which before it is imported.</p>
        </div>
      ) : (
        <TextField label="Folder" name="path" required placeholder="/srv/datasets/so101" hint="Must be inside DATASET_IMPORT_ROOTS" />
      )}
      {progress !== null && <ProgressBar value={progress} label="Upload progress" className="sm:col-span-2" />}
      {(error || mutationError) && <Alert className="sm:col-span-2">{error ?? errorMessage(mutationError)}</Alert>}
      <div className="sm:col-span-2">
        <Button type="submit" disabled={progress !== null || importFolder.isPending || isChecking}>{progress !== null ? `Uploading… ${Math.round(progress * 100)}%` : isChecking ? "Reading the dataset…" : "Import dataset"}</Button>
      </div>
    </form>
  );
}
