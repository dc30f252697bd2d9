"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { TextField } from "@/components/ui/field";
import { errorMessage, useTRPC } from "@/components/trpc";
import type { ModelVersionView } from "@/server/models/models.schemas";
import { parseDims } from "./add-version";
import { readNpy, readTestVectorJson } from "./test-vector";

/**
 * Validate a version again with other dimension values, more timed runs, and optionally a
 * test vector: known inputs with the outputs they must give, as one JSON file or as .npy
 * files named after their tensors. The report then shows the largest difference.
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
    const toleranceText = String(form.get("tolerance") ?? "").trim();
    const tolerance = toleranceText ? Number(toleranceText) : undefined;
    if (tolerance !== undefined && !(tolerance >= 0)) return setError("The tolerance must be a number of 0 or more");
    const files = (name: string) => form.getAll(name).filter((f): f is File => f instanceof File && f.size > 0);
    try {
      let testVector: unknown;
      const [json] = files("vector");
      const inputs = files("inputs");
      const outputs = files("outputs");
      if (json && (inputs.length || outputs.length)) return setError("Give either one JSON test vector or .npy files, not both");
      if (json) testVector = await readTestVectorJson(json);
      else if (inputs.length || outputs.length) {
        if (!inputs.length || !outputs.length) return setError("A test vector needs both inputs and the outputs they should give");
        testVector = { inputs: Object.fromEntries(await Promise.all(inputs.map(readNpy))), outputs: Object.fromEntries(await Promise.all(outputs.map(readNpy))) };
      }
      if (testVector && tolerance !== undefined && typeof testVector === "object") testVector = { ...(testVector as object), tolerance };
      revalidate.mutate({ versionId: version.id, dims, runs, testVector: testVector as never });
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <form onSubmit={(e) => void onSubmit(e)} className="mt-4 grid gap-4 rounded-md border border-zinc-200 p-4 sm:grid-cols-3 dark:border-zinc-800" aria-label={`Validate version ${version.number} again`}>
      <TextField label="Dimension values" name="dims" placeholder="batch=1" hint="For symbolic dimensions; others are 1" />
      <TextField label="Timed runs" name="runs" type="number" min={1} max={10_000} placeholder="settings default" />
      <TextField label="Tolerance" name="tolerance" type="number" step="any" min={0} placeholder="report only" hint="A larger max |diff| fails validation" />
      <label className="block text-sm">
        <span className="mb-1.5 block font-medium">Test vector (JSON)</span>
        <input type="file" name="vector" accept=".json,application/json" className="text-sm" />
      </label>
      <label className="block text-sm">
        <span className="mb-1.5 block font-medium">Or inputs (.npy, named after each input)</span>
        <input type="file" name="inputs" accept=".npy" multiple className="text-sm" />
      </label>
      <label className="block text-sm">
        <span className="mb-1.5 block font-medium">And expected outputs (.npy)</span>
        <input type="file" name="outputs" accept=".npy" multiple className="text-sm" />
      </label>
      {(error || revalidate.error) && <Alert className="sm:col-span-3">{error ?? errorMessage(revalidate.error)}</Alert>}
      <div className="sm:col-span-3 flex gap-3">
        <Button type="submit" disabled={revalidate.isPending}>{revalidate.isPending ? "Starting…" : "Validate"}</Button>
        <Button type="button" variant="ghost" onClick={onDone}>Cancel</Button>
      </div>
    </form>
  );
}
