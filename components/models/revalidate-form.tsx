"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { TextField } from "@/components/ui/field";
import { errorMessage, useTRPC } from "@/components/trpc";
import type { ModelVersionView } from "@/server/models/models.schemas";
import { parseDims } from "./add-version";
import { TestVectorFields } from "./test-vector-fields";
import { readTestVectorFields } from "./test-vector";

/**
 * Validate a version again with other dimension values, more timed runs, and optionally a
 * test vector: known inputs, and the outputs they should give, as one JSON file or as .npy
 * files named after their tensors. A vector that does not fit the version is refused at once
 * and nothing changes; one that fits is run after the model, and its outcome is shown beside
 * the model's without changing the version's status.
 */
export function RevalidateForm({ version, onDone }: { version: ModelVersionView; onDone: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [error, setError] = useState<string | null>(null);
  const revalidate = useMutation(
    trpc.models.revalidate.mutationOptions({
      onSuccess: () => {
        void queryClient.invalidateQueries({ queryKey: trpc.models.get.queryKey({ modelId: version.modelId }) });
        onDone();
      },
    }),
  );

  const onSubmit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    setError(null);
    const form = new FormData(e.currentTarget);
    const dims = parseDims(String(form.get("dims") ?? ""));
    if (typeof dims === "string") return setError(dims);
    const runsText = String(form.get("runs") ?? "").trim();
    const runs = runsText ? Number(runsText) : undefined;
    if (runs !== undefined && !(Number.isInteger(runs) && runs >= 1 && runs <= 10_000)) return setError("Timed runs must be a whole number from 1 to 10000");
    try {
      const testVector = await readTestVectorFields(form);
      revalidate.mutate({ versionId: version.id, dims, runs, testVector: testVector as never });
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <form onSubmit={(e) => void onSubmit(e)} className="mt-4 grid gap-4 rounded-md border border-zinc-200 p-4 sm:grid-cols-3 dark:border-zinc-800" aria-label={`Validate version ${version.number} again`}>
      <TextField label="Dimension values" name="dims" placeholder="batch=1" hint="For symbolic dimensions; others are 1" />
      <TextField label="Timed runs" name="runs" type="number" min={1} max={10_000} placeholder="settings default" />
      <TestVectorFields />
      {(error || revalidate.error) && <Alert className="sm:col-span-3">{error ?? errorMessage(revalidate.error)}</Alert>}
      <div className="sm:col-span-3 flex gap-3">
        <Button type="submit" disabled={revalidate.isPending}>{revalidate.isPending ? "Starting…" : "Validate"}</Button>
        <Button type="button" variant="ghost" onClick={onDone}>Cancel</Button>
      </div>
    </form>
  );
}
