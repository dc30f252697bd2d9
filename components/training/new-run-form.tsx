"use client";

import { useRole } from "@/components/settings/use-role";
import { useMutation, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { SelectField, TextField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { errorMessage, useTRPC } from "@/components/trpc";
import { POLICY_PRESETS } from "@/server/training/training.schemas";

/** The form's labels, by the input path an error names. */
const RUN_LABELS: Record<string, string> = {
  datasetId: "Dataset",
  targetId: "Target",
  name: "Name",
  policyType: "Policy type",
  steps: "Steps",
  saveFreq: "Save every (steps)",
  logFreq: "Log every (steps)",
  extraArgs: "Extra arguments",
  "gateOverride.reason": "Override the quality gate",
};

export function NewRunForm({ datasetId }: { datasetId?: string }) {
  const trpc = useTRPC();
  const router = useRouter();
  const { can } = useRole();
  const datasets = useQuery(trpc.datasets.list.queryOptions());
  const targets = useQuery(trpc.training.targets.queryOptions());
  const [policy, setPolicy] = useState("act");
  const start = useMutation(trpc.training.startRun.mutationOptions({ onSuccess: ({ runId }) => router.push(`/training/runs/${runId}`) }));
  const defaultTarget = targets.data?.find((t) => t.isDefault) ?? targets.data?.[0];

  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const s = (k: string) => String(f.get(k) ?? "").trim();
    start.mutate({
      datasetId: s("datasetId"),
      targetId: s("targetId") || undefined,
      name: s("name") || undefined,
      policyType: s("policyType"),
      steps: Number(s("steps")),
      saveFreq: Number(s("saveFreq")),
      logFreq: Number(s("logFreq")),
      extraArgs: s("extraArgs"),
      ...(s("gateOverride") ? { gateOverride: { reason: s("gateOverride") } } : {}),
    });
  };
  const isLoading = !datasets.data || !targets.data;
  return (
    <>
      <PageHeader title="New training run" description={<>LeRobot&apos;s <code>lerobot-train</code> on one of your GPU hosts. <Link href="/training" className="underline">Back to runs</Link></>} />
      {datasets.data && !datasets.data.some((d) => d.episodes.ready > 0) && <Alert tone="amber" className="mb-4">No dataset has a ready episode to train on yet: upload episodes or import a dataset under <Link href="/datasets" className="underline">Datasets</Link>.</Alert>}
      {targets.data?.length === 0 && <Alert tone="amber" className="mb-4">There is no training target yet: an admin adds one under <Link href="/training/targets" className="underline">Training → Targets</Link>.</Alert>}
      <Card>
        <CardHeader title="What to train" description="The dataset's current build is sent to the host (only files the host lacks), training starts detached there, and the final checkpoint comes back as a model version." />
        <CardBody>
          {isLoading ? (
            <p className="text-sm text-zinc-500">Loading…</p>
          ) : (
            <form onSubmit={onSubmit} className="grid gap-4 sm:grid-cols-3" aria-label="New training run">
              <SelectField label="Dataset" name="datasetId" defaultValue={datasetId} required options={datasets.data!.filter((d) => d.episodes.ready > 0 || d.id === datasetId).map((d) => ({ value: d.id, label: `${d.repoId} (${d.episodes.ready} episodes)` }))} className="sm:col-span-2" />
              <SelectField label="Target" name="targetId" defaultValue={defaultTarget?.id} options={targets.data!.map((t) => ({ value: t.id, label: `${t.name}${t.isDefault ? " (default)" : ""}${t.activeRuns ? ` · ${t.activeRuns} active` : ""}` }))} />
              <div className="space-y-1.5">
                <label htmlFor="run-policy" className="block text-sm font-medium">Policy type</label>
                <input id="run-policy" name="policyType" list="policy-presets" value={policy} onChange={(e) => setPolicy(e.target.value)} required className="h-10 w-full rounded-md border border-zinc-300 bg-white px-3 text-sm dark:border-zinc-700 dark:bg-zinc-950" />
                <datalist id="policy-presets">{POLICY_PRESETS.map((p) => <option key={p} value={p} />)}</datalist>
                <p className="text-xs text-zinc-500">{POLICY_PRESETS.join(", ")} or any LeRobot policy type</p>
              </div>
              <TextField label="Name" name="name" placeholder="dataset-policy" hint="also the name of the model its checkpoint registers as" />
              <TextField label="Steps" name="steps" type="number" min={1} defaultValue={100_000} required />
              <TextField label="Save every (steps)" name="saveFreq" type="number" min={1} defaultValue={20_000} required />
              <TextField label="Log every (steps)" name="logFreq" type="number" min={1} defaultValue={200} required />
              <TextField label="Extra arguments" name="extraArgs" placeholder="--batch_size=16 --policy.n_action_steps=50" className="sm:col-span-3" hint="passed to the command as written, each quoted" />
              {can("admin") && start.error && /quality gate/.test(start.error.message) && (
                <TextField label="Override the quality gate" name="gateOverride" required minLength={3} className="sm:col-span-3" placeholder="why this dataset may be trained on anyway" hint="kept in the audit log" />
              )}
              {start.error && <Alert className="sm:col-span-3">{errorMessage(start.error, RUN_LABELS)}</Alert>}
              <div className="sm:col-span-3">
                <Button type="submit" disabled={start.isPending || targets.data!.length === 0}>{start.isPending ? "Starting…" : "Start training"}</Button>
              </div>
            </form>
          )}
        </CardBody>
      </Card>
    </>
  );
}
