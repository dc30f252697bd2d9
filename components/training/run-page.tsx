"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import Link from "next/link";
import { useEffect, useMemo, useRef, useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { ProgressBar } from "@/components/ui/progress-bar";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { LineChart } from "@/components/ui/line-chart";
import { isRunActive, RunStatusBadge } from "./run-status";
import { RunCheckpoints } from "./run-checkpoints";

export function RunPage({ runId }: { runId: string }) {
  const trpc = useTRPC();
  const { can } = useRole();
  const queryClient = useQueryClient();
  const run = useQuery({ ...trpc.training.run.queryOptions({ runId }), refetchInterval: (q) => (q.state.data && !isRunActive(q.state.data.status) && !isSettling(q.state.data) ? false : 1_000) });
  const isActive = run.data ? isRunActive(run.data.status) : true;
  const metrics = useQuery({ ...trpc.training.metrics.queryOptions({ runId }), refetchInterval: isActive ? 2_000 : false });
  const invalidate = () => queryClient.invalidateQueries({ queryKey: trpc.training.run.queryKey({ runId }) });
  const cancel = useMutation(trpc.training.cancelRun.mutationOptions({ onSettled: invalidate }));
  const resume = useMutation(trpc.training.resumeRun.mutationOptions({ onSettled: invalidate }));
  const retry = useMutation(trpc.training.retryRun.mutationOptions({ onSettled: invalidate }));
  const actionError = cancel.error ?? resume.error ?? retry.error;

  if (run.error) return <Alert>{errorMessage(run.error)}</Alert>;
  if (!run.data) return <p className="text-sm text-zinc-500">Loading…</p>;
  const r = run.data;
  const canRestart = can("operator") && ["failed", "cancelled", "lost"].includes(r.status);
  return (
    <>
      <PageHeader
        title={r.name}
        description={<><Link href="/training" className="underline">Training</Link> · {r.policyType} on <Link href={`/datasets/${r.dataset.id}`} className="underline">{r.dataset.repoId}</Link> · target {r.target.name}{r.attempt > 1 ? ` · attempt ${r.attempt}` : ""}</>}
        actions={
          <>
            {can("operator") && isActive && <Button variant="danger" disabled={cancel.isPending} onClick={() => confirm("Cancel this run? Training is stopped on the host (TERM, then KILL after the grace period).") && cancel.mutate({ runId })}>Cancel run</Button>}
            {can("operator") && r.status === "lost" && r.runDir && <Button variant="danger" disabled={cancel.isPending} onClick={() => confirm("Stop this run on its host? Gantry lost track of it; if its process still runs there it is stopped (TERM, then KILL after the grace period).") && cancel.mutate({ runId })}>Stop on host</Button>}
            {canRestart && r.lastStep !== null && <Button variant="secondary" disabled={resume.isPending} onClick={() => resume.mutate({ runId })}>Resume from last checkpoint</Button>}
            {canRestart && <Button variant="secondary" disabled={retry.isPending} onClick={() => retry.mutate({ runId })}>Retry afresh</Button>}
          </>
        }
      />
      {actionError && <Alert className="mb-4">{errorMessage(actionError)}</Alert>}
      <Card className="mb-6">
        <CardBody className="space-y-3">
          <div className="flex flex-wrap items-center gap-3">
            <RunStatusBadge status={r.status} />
            <span className="text-sm tabular-nums" data-testid="run-step">step {r.lastStep ?? 0} of {r.steps}</span>
            {r.lastMetrics && typeof r.lastMetrics.loss === "number" && <span className="text-sm text-zinc-500">loss {r.lastMetrics.loss}</span>}
            {r.startedAt && <span className="text-xs text-zinc-500">started <RelativeTime date={r.startedAt} /></span>}
            {r.finishedAt && <span className="text-xs text-zinc-500">ended <RelativeTime date={r.finishedAt} /></span>}
            {r.jobId && <Link href={`/jobs/${r.jobId}`} className="text-xs text-brand-600 underline">job log</Link>}
          </div>
          {r.transaction && <p className="text-sm" data-testid="run-transaction">Transaction <code>{r.transaction.id}</code>{r.transaction.status && <> · the API says <code>{r.transaction.status}</code></>}</p>}
          {r.slurm && <p className="text-sm" data-testid="run-slurm">Slurm job <code>{r.slurm.jobId}</code>{r.slurm.state && <> · <code>{r.slurm.state}</code></>} — {r.slurm.words}</p>}
          <ProgressBar value={(r.lastStep ?? 0) / r.steps} label="Training progress" tone={r.status === "succeeded" ? "green" : r.status === "failed" || r.status === "lost" ? "red" : "blue"} />
          {r.status === "unreachable" && r.unreachableSince && <Alert tone="amber">{r.target.name} has not answered since <RelativeTime date={r.unreachableSince} />. Training goes on there if the host is up; the run is declared lost only after the configured time.</Alert>}
          {r.error && <Alert title={r.status === "failed" || r.status === "lost" ? `Run ${r.status}` : "Last problem"}><pre className="whitespace-pre-wrap font-mono text-xs">{r.error}</pre></Alert>}
          {r.checkpointVersion && (
            <Alert tone="green" title="Checkpoint registered">
              <Link href={`/models/${r.checkpointVersion.modelId}`} className="underline" data-testid="checkpoint-link">{r.checkpointVersion.modelName} version {r.checkpointVersion.number}</Link> — LeRobot checkpoint at step {r.steps}.
              {r.exportVersion && (
                <> The ONNX export is <Link href={`/models/${r.exportVersion.modelId}`} className="underline" data-testid="export-link">version {r.exportVersion.number}</Link> ({r.exportVersion.status === "validating" ? "being validated" : r.exportVersion.status === "ready" ? "validated, ready to deploy" : r.exportVersion.status}).</>
              )}
            </Alert>
          )}
          {r.exportError && <Alert tone="amber" title="The ONNX export failed"><pre className="whitespace-pre-wrap font-mono text-xs">{r.exportError}</pre></Alert>}
          <details className="text-xs text-zinc-500">
            <summary className="cursor-pointer">Command and folders on the host</summary>
            <p className="mt-2 break-all font-mono">{r.command}</p>
            {r.runDir && <p className="mt-1">Run folder: <code>{r.runDir}</code> · output: <code>{r.outputDir}</code>{r.exitCode !== null ? ` · exit code ${r.exitCode}` : ""}</p>}
          </details>
        </CardBody>
      </Card>
      <div className="mb-6 grid gap-6 lg:grid-cols-2">
        <Card>
          <CardHeader title="Loss and learning rate" description="From LeRobot's periodic log line; the step is exact (from the log count and log frequency)." />
          <CardBody>
            <MetricsChart train={metrics.data?.train ?? []} />
          </CardBody>
        </Card>
        <Card>
          <CardHeader title="GPU" description="Sampled on the host while the run trains (nvidia-smi)." />
          <CardBody>
            <GpuChart gpu={metrics.data?.gpu ?? []} />
          </CardBody>
        </Card>
      </div>
      <RunCheckpoints runId={runId} steps={r.steps} checkpoints={r.checkpoints} />
      <LogView runId={runId} attempt={r.attempt} truncated={r.logTruncated} />
    </>
  );
}

/** A finished run still changing: a checkpoint on its way home, or its ONNX being validated. */
function isSettling(r: { checkpoints: { pullJobId: string | null }[]; exportVersion: { status: string } | null }) {
  return r.checkpoints.some((c) => c.pullJobId) || r.exportVersion?.status === "validating";
}

function MetricsChart({ train }: { train: { step: number; values: Record<string, number> }[] }) {
  const x = useMemo(() => train.map((m) => m.step), [train]);
  const series = useMemo(
    () => [
      { label: "loss", values: train.map((m) => m.values.loss ?? null), color: "#2f7cf6" },
      { label: "lr", values: train.map((m) => m.values.lr ?? null), color: "#f59e0b", axis: 1 as const },
    ],
    [train],
  );
  if (!train.length) return <p className="py-16 text-center text-sm text-zinc-500">No training line logged yet.</p>;
  return <LineChart x={x} xLabel="step" series={series} yLabels={["loss", "learning rate"]} testId="loss-chart" />;
}

function GpuChart({ gpu }: { gpu: { at: Date; step: number; values: Record<string, number> }[] }) {
  const x = useMemo(() => gpu.map((g) => (new Date(g.at).getTime() - new Date(gpu[0]?.at ?? 0).getTime()) / 1000), [gpu]);
  const series = useMemo(
    () => [
      { label: "utilisation", unit: "%", values: gpu.map((g) => g.values.util ?? null), color: "#10b981" },
      { label: "memory", unit: "GiB", values: gpu.map((g) => (g.values.mem_used_mib ?? 0) / 1024), color: "#8b5cf6", axis: 1 as const },
    ],
    [gpu],
  );
  if (!gpu.length) return <p className="py-16 text-center text-sm text-zinc-500">No GPU sample yet (the host reports one while training).</p>;
  return <LineChart x={x} xLabel="seconds since the first sample" series={series} yLabels={["utilisation (%)", "memory (GiB)"]} testId="gpu-chart" />;
}

/** The live log (an event stream of the pieces the worker stores): follows new lines or pauses, with a search. */
function LogView({ runId, attempt, truncated }: { runId: string; attempt: number; truncated: boolean }) {
  const trpc = useTRPC();
  const [log, setLog] = useState({ attempt, text: "" });
  const [isFollowing, setFollowing] = useState(true);
  const [search, setSearch] = useState("");
  const box = useRef<HTMLPreElement>(null);
  const stream = useSubscription(
    trpc.training.onLog.subscriptionOptions(
      { runId, attempt },
      { onData: ({ data: piece }) => setLog((l) => (l.attempt === piece.attempt ? { attempt, text: (l.text + piece.text).slice(-2_000_000) } : { attempt: piece.attempt, text: piece.text })) },
    ),
  );
  const text = log.attempt === attempt ? log.text : "";
  useEffect(() => {
    if (isFollowing && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [text, isFollowing]);
  const lines = useMemo(() => text.split(/\r\n|\n|\r/), [text]);
  const shown = search ? lines.filter((l) => l.toLowerCase().includes(search.toLowerCase())) : lines;
  return (
    <Card>
      <CardHeader
        title="Log"
        description={`stdout and stderr of attempt ${attempt}, read from the host by byte offset${truncated ? " — cut at the size limit; the whole log stays on the host" : ""}`}
        actions={
          <>
            <input aria-label="Search the log" placeholder="Search" value={search} onChange={(e) => setSearch(e.target.value)} className="h-8 w-40 rounded-md border border-zinc-300 bg-white px-2 text-sm dark:border-zinc-700 dark:bg-zinc-950" />
            <Button size="sm" variant="secondary" onClick={() => setFollowing((v) => !v)} aria-pressed={isFollowing}>{isFollowing ? "Pause" : "Follow"}</Button>
          </>
        }
      />
      <pre ref={box} data-testid="run-log" className="max-h-[28rem] overflow-auto whitespace-pre-wrap break-all bg-zinc-950 px-4 py-3 font-mono text-xs text-zinc-100">
        {shown.length === 1 && !shown[0] ? <span className="text-zinc-500">No output yet.</span> : shown.join("\n")}
      </pre>
      {search && <p className="px-5 py-2 text-xs text-zinc-500">{shown.length} of {lines.length} lines match</p>}
      {stream.status === "error" && <p className="px-5 py-2 text-xs text-red-600">The live log stopped: {errorMessage(stream.error)}. Reload the page to follow it again.</p>}
    </Card>
  );
}
