"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { cn } from "@/components/ui/cn";
import { TextField } from "@/components/ui/field";
import { ProgressBar } from "@/components/ui/progress-bar";
import { errorMessage, getTabOrg, useTRPC } from "@/components/trpc";
import { TestVectorFields } from "./test-vector-fields";
import { readTestVectorFields } from "./test-vector";

type Source = "upload" | "url" | "hub";

export function parseDims(raw: string): Record<string, number> | string {
  if (!raw.trim()) return {};
  const dims: Record<string, number> = {};
  for (const part of raw.split(",")) {
    const [name, value] = part.split("=").map((s) => s.trim());
    const n = Number(value);
    if (!name || !Number.isInteger(n) || n < 1) return `Write dimensions as name=value, separated by commas (e.g. batch=1); "${part.trim()}" is not`;
    dims[name] = n;
  }
  return dims;
}

/**
 * Streams the file as the request body, with upload progress (fetch cannot report it). A test
 * vector goes first, its JSON's length in Test-Vector-Length; the file is not read into memory.
 */
function uploadFile(modelId: string, file: File, dims: Record<string, number>, testVector: unknown, onProgress: (f: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const query = new URLSearchParams({ filename: file.name, dims: JSON.stringify(dims) });
    xhr.open("POST", `/api/models/${modelId}/versions?${query}`);
    const org = getTabOrg();
    if (org) xhr.setRequestHeader("x-gantry-org", org);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    const vector = testVector === undefined ? null : new TextEncoder().encode(JSON.stringify(testVector));
    if (vector) xhr.setRequestHeader("test-vector-length", String(vector.byteLength));
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      try {
        reject(new Error(JSON.parse(xhr.responseText).error.message));
      } catch {
        reject(new Error(`The upload failed (HTTP ${xhr.status})`));
      }
    };
    xhr.onerror = () => reject(new Error("The upload was interrupted; check the connection and try again"));
    xhr.send(vector ? new Blob([vector, file]) : file);
  });
}

export function AddVersion({ modelId }: { modelId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [source, setSource] = useState<Source>("upload");
  const [error, setError] = useState<string | null>(null);
  const [uploadProgress, setUploadProgress] = useState<number | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.models.get.queryKey({ modelId }) });
  const fromUrl = useMutation(trpc.models.addVersionFromUrl.mutationOptions({ onSuccess: refresh }));
  const fromHub = useMutation(trpc.models.addVersionFromHub.mutationOptions({ onSuccess: refresh }));
  const isBusy = uploadProgress !== null || fromUrl.isPending || fromHub.isPending;

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setError(null);
    const formElement = e.currentTarget;
    const form = new FormData(formElement);
    const dims = parseDims(String(form.get("dims") ?? ""));
    if (typeof dims === "string") return setError(dims);
    try {
      if (source === "upload") {
        const file = form.get("file");
        if (!(file instanceof File) || file.size === 0) return setError("Choose an .onnx file to upload");
        const testVector = await readTestVectorFields(form);
        setUploadProgress(0);
        await uploadFile(modelId, file, dims, testVector, setUploadProgress);
        await refresh();
      } else if (source === "url") {
        await fromUrl.mutateAsync({ modelId, url: String(form.get("url")), dims });
      } else {
        const token = String(form.get("token") ?? "").trim();
        await fromHub.mutateAsync({ modelId, repo: String(form.get("repo")), revision: String(form.get("revision") || "main"), filename: String(form.get("filename")), token: token || undefined, dims });
      }
      formElement.reset();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setUploadProgress(null);
    }
  }

  const tabs: Array<{ id: Source; label: string }> = [
    { id: "upload", label: "Upload a file" },
    { id: "url", label: "From a URL" },
    { id: "hub", label: "From a model hub" },
  ];

  return (
    <Card>
      <CardHeader title="Add a version" description="Versions are immutable. Each one is fetched, then validated with onnxruntime; watch it in the versions list." />
      <CardBody className="space-y-4">
        <div role="tablist" aria-label="Where the version comes from" className="flex gap-1 border-b border-zinc-200 dark:border-zinc-800">
          {tabs.map((t) => (
            <button key={t.id} type="button" role="tab" aria-selected={source === t.id} onClick={() => setSource(t.id)} className={cn("-mb-px border-b-2 px-3 py-2 text-sm font-medium", source === t.id ? "border-brand-600" : "border-transparent text-zinc-500 hover:text-zinc-800 dark:hover:text-zinc-200")}>
              {t.label}
            </button>
          ))}
        </div>
        <form onSubmit={onSubmit} className="space-y-4" aria-label="Add a version">
          {source === "upload" && (
            <div className="space-y-1.5">
              <label htmlFor="onnx-file" className="block text-sm font-medium">ONNX file</label>
              <input id="onnx-file" name="file" type="file" accept=".onnx,application/octet-stream" required className="block w-full text-sm file:mr-3 file:rounded-md file:border-0 file:bg-zinc-100 file:px-3 file:py-2 file:text-sm dark:file:bg-zinc-800" />
            </div>
          )}
          {source === "url" && <TextField label="File URL" name="url" type="url" required placeholder="https://example.com/policy.onnx" />}
          {source === "hub" && (
            <div className="grid gap-4 sm:grid-cols-2">
              <TextField label="Repository" name="repo" required placeholder="owner/name" />
              <TextField label="Revision" name="revision" placeholder="main" />
              <TextField label="File in the repository" name="filename" required placeholder="model.onnx" />
              <TextField label="Access token" name="token" type="password" autoComplete="off" hint="Only for private repositories; used for this download and never stored" />
            </div>
          )}
          <TextField label="Dimension values" name="dims" placeholder="batch=1" hint="Values for symbolic input dimensions during validation; others are 1" />
          {source === "upload" && (
            <fieldset className="grid gap-4 rounded-md border border-zinc-200 p-4 sm:grid-cols-2 dark:border-zinc-800">
              <legend className="px-1 text-sm font-medium">Test vector (optional)</legend>
              <TestVectorFields />
            </fieldset>
          )}
          {error && <Alert>{error}</Alert>}
          {uploadProgress !== null && <ProgressBar value={uploadProgress} label="Upload progress" />}
          <Button type="submit" disabled={isBusy}>{isBusy ? "Adding…" : "Add version"}</Button>
        </form>
      </CardBody>
    </Card>
  );
}
