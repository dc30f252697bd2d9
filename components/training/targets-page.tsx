"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { CredentialFields, credentialFromForm, type AuthKind } from "@/components/ui/credential-fields";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { SelectField, TextField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { DEFAULT_TEMPLATE } from "@/server/training/training.schemas";

export function TargetsPage() {
  const trpc = useTRPC();
  const { can } = useRole();
  const queryClient = useQueryClient();
  const targets = useQuery(trpc.training.targets.queryOptions());
  const invalidate = () => queryClient.invalidateQueries({ queryKey: trpc.training.targets.queryKey() });
  const test = useMutation(trpc.training.testTarget.mutationOptions({ onSettled: invalidate }));
  const remove = useMutation(trpc.training.deleteTarget.mutationOptions({ onSettled: invalidate }));
  const [isAdding, setAdding] = useState(false);
  const error = test.error ?? remove.error;

  return (
    <>
      <PageHeader
        title="Training targets"
        description={<>GPU hosts the team owns, reached over SSH. <Link href="/training" className="underline">Back to runs</Link></>}
        actions={can("admin") && <Button variant="secondary" onClick={() => setAdding((v) => !v)} aria-expanded={isAdding}>Add target</Button>}
      />
      {isAdding && (
        <Card className="mb-6">
          <CardHeader title="Add a training target" description="Then run Test target: it pins the host key and reads the GPUs, free disk, Python and LeRobot the host has." />
          <CardBody>
            <AddTargetForm onDone={() => setAdding(false)} />
          </CardBody>
        </Card>
      )}
      {error && <Alert className="mb-4">{errorMessage(error)}</Alert>}
      {targets.data?.length === 0 && !isAdding && <Card><p className="px-5 py-10 text-center text-sm text-zinc-500">No training targets yet.{can("admin") ? " Add the GPU host your team trains on." : ""}</p></Card>}
      <div className="space-y-4">
        {targets.data?.map((t) => (
          <Card key={t.id} data-target={t.name}>
            <CardHeader
              title={<>{t.name} {t.isDefault && <Badge tone="blue" className="ml-2">default</Badge>}</>}
              description={`${t.kind === "slurm" ? "Slurm, through " : t.kind === "transactions-api" ? `Transactions API ${t.apiUrl ?? ""}, model host ` : ""}${t.username}@${t.host}:${t.port} · work directory ${t.workDir} · ${t.activeRuns} active run(s), ${t.concurrency} at a time`}
              actions={
                can("admin") && (
                  <>
                    <Button size="sm" variant="secondary" disabled={test.isPending} onClick={() => test.mutate({ targetId: t.id })}>{test.isPending && test.variables?.targetId === t.id ? "Testing…" : "Test target"}</Button>
                    <Button size="sm" variant="ghost" onClick={() => confirm(`Delete the training target ${t.name}?`) && remove.mutate({ targetId: t.id })}>Delete</Button>
                  </>
                )
              }
            />
            <CardBody className="space-y-3 text-sm">
              <p className="break-all font-mono text-xs text-zinc-600 dark:text-zinc-400">{t.activate ? `${t.activate} && ` : ""}{t.commandTemplate}</p>
              {t.exportCommand && <p className="break-all font-mono text-xs text-zinc-500">export: {t.exportCommand}</p>}
              <p className="text-xs text-zinc-500">Host key: {t.pinnedHostKey ? <code>{t.pinnedHostKey}</code> : "not pinned yet — run Test target"}{t.lastTestAt && <> · tested <RelativeTime date={t.lastTestAt} /></>}</p>
              {t.facts && (
                <div data-testid="target-facts">
                  <ul className="grid gap-1 sm:grid-cols-2">
                    <li>GPUs: {t.facts.gpus.length ? t.facts.gpus.map((g) => `${g.name}${g.memoryMiB ? ` (${(g.memoryMiB / 1024).toFixed(0)} GiB)` : ""}`).join(", ") : "none found"}</li>
                    <li>Driver: {t.facts.gpus[0]?.driver || "–"}</li>
                    <li>Python: {t.facts.python ?? "not found"}</li>
                    <li>LeRobot: {t.facts.lerobot ?? "not found"}</li>
                    <li>Free disk: {t.facts.diskFreeBytes === null ? "unknown" : `${(t.facts.diskFreeBytes / 1024 ** 3).toFixed(1)} GiB`}</li>
                  </ul>
                  {t.facts.problems.length > 0 ? (
                    <Alert tone="amber" className="mt-3" title="What is missing">
                      <ul className="list-disc pl-5">{t.facts.problems.map((p) => <li key={p}>{p}</li>)}</ul>
                    </Alert>
                  ) : (
                    <p className="mt-2 text-emerald-700 dark:text-emerald-400">Ready to train.</p>
                  )}
                </div>
              )}
            </CardBody>
          </Card>
        ))}
      </div>
    </>
  );
}

type TargetKind = "ssh" | "slurm" | "transactions-api";

function AddTargetForm({ onDone }: { onDone: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [authKind, setAuthKind] = useState<AuthKind>("key");
  const [kind, setKind] = useState<TargetKind>("ssh");
  const create = useMutation(
    trpc.training.createTarget.mutationOptions({
      onSuccess: async () => {
        await queryClient.invalidateQueries({ queryKey: trpc.training.targets.queryKey() });
        onDone();
      },
    }),
  );
  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const s = (k: string) => String(f.get(k) ?? "").trim();
    create.mutate({
      name: s("name"),
      host: s("host"),
      port: Number(s("port") || 22),
      username: s("username"),
      credential: credentialFromForm(f, authKind),
      workDir: s("workDir") || "~/gantry",
      activate: s("activate"),
      commandTemplate: s("commandTemplate") || DEFAULT_TEMPLATE,
      exportCommand: s("exportCommand"),
      concurrency: Number(s("concurrency") || 1),
      isDefault: f.get("isDefault") === "on",
      kind,
      api: kind === "transactions-api" ? { url: s("apiUrl"), token: String(f.get("apiToken") ?? "") } : null,
      slurm: kind === "slurm" ? { partition: s("partition"), account: s("account"), options: s("sbatchOptions").split("\n").map((o) => o.trim()).filter(Boolean) } : null,
    });
  };
  return (
    <form onSubmit={onSubmit} className="grid gap-4 sm:grid-cols-3" aria-label="Add training target">
      <SelectField
        label="Kind"
        className="sm:col-span-3"
        value={kind}
        onChange={(e) => setKind(e.target.value as TargetKind)}
        options={[
          { value: "ssh", label: "GPU host over SSH" },
          { value: "slurm", label: "Slurm cluster (its login host over SSH)" },
          { value: "transactions-api", label: "Transactions API (the earlier cloud API; its model host over SSH)" },
        ]}
      />
      <TextField label="Name" name="name" required maxLength={80} placeholder="lab-4090" />
      <TextField label="Host" name="host" required placeholder="gpu.lab.lan" />
      <TextField label="Port" name="port" type="number" min={1} max={65535} defaultValue={22} />
      <TextField label="User" name="username" required placeholder="robot" />
      <CredentialFields authKind={authKind} onAuthKind={setAuthKind} idPrefix="target" />
      <TextField label="Work directory" name="workDir" defaultValue="~/gantry" hint="runs, the dataset cache and checkpoints go here" />
      <TextField label="Environment activation" name="activate" placeholder="source ~/lerobot/.venv/bin/activate" className="sm:col-span-2" />
      <div className="space-y-1.5 sm:col-span-3">
        <label htmlFor="target-template" className="block text-sm font-medium">Command template</label>
        <textarea id="target-template" name="commandTemplate" rows={3} defaultValue={DEFAULT_TEMPLATE} className="w-full rounded-md border border-zinc-300 bg-white px-3 py-2 font-mono text-xs dark:border-zinc-700 dark:bg-zinc-950" />
        <p className="text-xs text-zinc-500">Placeholders {"{repo_id} {dataset} {policy} {output} {name} {steps} {save_freq} {log_freq}"}; every value is shell-quoted on the host.</p>
      </div>
      <TextField
        label="Export to ONNX (optional)"
        name="exportCommand"
        className="sm:col-span-3"
        placeholder="python ~/export_policy.py --checkpoint {checkpoint} --out {onnx}"
        hint="run on the host after a run succeeds, with the environment above; must write {onnx} from {checkpoint} (also {output} {name} {policy} {repo_id} {steps}). The ONNX becomes a model version and is validated like any upload."
      />
      {kind === "transactions-api" && (
        <>
          <TextField label="API address" name="apiUrl" required type="url" placeholder="https://train.lab.lan/api" hint="…/transactions/start is under it" className="sm:col-span-2" />
          <TextField label="API token" name="apiToken" type="password" autoComplete="off" hint="sent as a bearer token; stored sealed" />
        </>
      )}
      {kind === "slurm" && (
        <>
          <TextField label="Partition" name="partition" placeholder="gpu" hint="empty: the cluster's default" />
          <TextField label="Account" name="account" placeholder="robotics" hint="empty: your default account" />
          <div className="space-y-1.5 sm:col-span-3">
            <label htmlFor="target-sbatch" className="block text-sm font-medium">sbatch options</label>
            <textarea id="target-sbatch" name="sbatchOptions" rows={3} placeholder={"--gres=gpu:1\n--time=1-00:00:00\n--mem=64G"} className="w-full rounded-md border border-zinc-300 bg-white px-3 py-2 font-mono text-xs dark:border-zinc-700 dark:bg-zinc-950" />
            <p className="text-xs text-zinc-500">One per line. Gantry adds the job name, the log file and --signal=B:USR1@120 (a warning to the trainer two minutes before the time limit). The work directory must be on storage the compute nodes share.</p>
          </div>
        </>
      )}
      <TextField label="Runs at once" name="concurrency" type="number" min={1} max={16} defaultValue={1} hint="one per GPU" />
      <label className="flex items-center gap-2 text-sm sm:col-span-2"><input type="checkbox" name="isDefault" /> The organisation&apos;s default target (for the earlier /edge/train endpoint)</label>
      {create.error && <Alert className="sm:col-span-3">{errorMessage(create.error)}</Alert>}
      <div className="flex gap-2 sm:col-span-3">
        <Button type="submit" disabled={create.isPending}>{create.isPending ? "Adding…" : "Add target"}</Button>
        <Button variant="ghost" onClick={onDone}>Cancel</Button>
      </div>
    </form>
  );
}
