"use client";

import { useQuery } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { Alert } from "@/components/ui/alert";
import { BarChart } from "@/components/ui/bar-chart";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { LineChart } from "@/components/ui/line-chart";
import { formatDuration } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { findJobDef } from "@/server/jobs/catalog";

/** A job kind as the Jobs page names it ("Encode episode"), its internal name when the catalog has none. */
const kindTitle = (kind: string) => findJobDef(kind)?.title ?? kind;

// The instance's health for its admins, drawn from the same figures as /api/metrics:
// queue depth per kind, job durations, jobs finished per minute over the last hour, workers,
// and what each process holds (open event streams, upload bytes, rate-limit refusals).

const REFRESH_MS = 10_000;
/** Samples of the queue kept while the page is open: an hour at REFRESH_MS. */
const MAX_SAMPLES = 360;
const palette = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#475569", "#ea580c"];

const seconds = (v: number) => (v >= 1 ? formatDuration(v * 1000) : `${Math.round(v * 1000)} ms`);
const bytes = (n: number) => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

export function HealthDashboard() {
  const trpc = useTRPC();
  const me = useQuery(trpc.auth.me.queryOptions());
  const isInstanceAdmin = me.data?.user.isInstanceAdmin === true;
  const figures = useQuery({ ...trpc.system.metrics.queryOptions(), enabled: isInstanceAdmin, refetchInterval: REFRESH_MS });
  const data = figures.data;

  // Queue depth over the time this page has been open: one sample per refresh.
  const [samples, setSamples] = useState<{ at: number; waiting: Record<string, number> }[]>([]);
  useEffect(() => {
    if (!data) return;
    const waiting = Object.fromEntries(data.queue.map((q) => [q.kind, q.waiting + q.running]));
    setSamples((s) => [...s, { at: data.at.getTime() / 1000, waiting }].slice(-MAX_SAMPLES));
  }, [data]);

  const throughput = useMemo(() => {
    if (!data) return null;
    const end = Math.floor(data.at.getTime() / 60_000) * 60;
    const x = Array.from({ length: 60 }, (_, i) => end - (59 - i) * 60);
    const per = (status: string) => x.map((t) => data.throughput.filter((r) => r.status === status && Math.floor(r.minute.getTime() / 1000) === t).reduce((n, r) => n + r.count, 0));
    return { x, succeeded: per("succeeded"), failed: per("failed"), cancelled: per("cancelled") };
  }, [data]);

  if (me.data && !isInstanceAdmin) return <Alert tone="blue">The instance&apos;s health (queue, job durations, workers, open streams) is shown to instance admins: the first account made on it, and the people listed in its INSTANCE_ADMINS setting.</Alert>;
  if (figures.error) return <Alert>{errorMessage(figures.error)}</Alert>;
  if (!data || !throughput) return <p className="text-sm text-zinc-500">Reading the figures…</p>;

  const busyKinds = data.queue.filter((q) => q.waiting + q.scheduled + q.running + q.failed > 0);
  const streams = data.processes.filter((p) => p.name === "gantry_sse_subscribers");
  const streamTotal = streams.reduce((n, p) => n + p.value, 0);
  const perProcess = [...new Set(data.processes.map((p) => p.process))].sort();
  const sumOf = (process: string, name: string) => data.processes.filter((p) => p.process === process && p.name === name).reduce((n, p) => n + p.value, 0);
  const sampledKinds = [...new Set(samples.flatMap((s) => Object.keys(s.waiting)))].filter((k) => samples.some((s) => (s.waiting[k] ?? 0) > 0));

  return (
    <div className="space-y-6" data-testid="health-dashboard">
      <div className="grid gap-4 sm:grid-cols-4">
        <Figure label="Live workers" value={String(data.workers.live)} note={data.workers.stale ? `${data.workers.stale} stale, being handed on` : "none stale"} testId="figure-workers" />
        <Figure label="Waiting jobs" value={String(data.queue.reduce((n, q) => n + q.waiting, 0))} note={`oldest ${oldest(data.queue)}`} testId="figure-waiting" />
        <Figure label="Open event streams" value={String(streamTotal)} note={`across ${new Set(streams.map((s) => s.process)).size} web process(es)`} testId="figure-streams" />
        <Figure label="Dead worker handoff" value={`≤ ${Math.round(data.handoffWindowSeconds)} s`} note="a dead worker's jobs run elsewhere within" testId="figure-handoff" />
      </div>

      <Card>
        <CardHeader title="Queue depth per kind" description="Entries now: waiting for a worker, scheduled for later (a retry's backoff), running, and out of attempts." />
        <CardBody>
          {busyKinds.length ? (
            <BarChart
              testId="chart-queue"
              stacked
              xLabel="queue entries"
              rows={busyKinds.map((q) => ({ label: kindTitle(q.kind), values: [q.waiting, q.scheduled, q.running, q.failed] }))}
              series={[{ label: "waiting", color: "#d97706" }, { label: "scheduled", color: "#a1a1aa" }, { label: "running", color: "#2563eb" }, { label: "failed", color: "#dc2626" }]}
            />
          ) : (
            <p className="text-sm text-zinc-500">The queue is empty.</p>
          )}
          {samples.length > 1 && sampledKinds.length > 0 && (
            <div className="mt-6">
              <p className="mb-2 text-xs text-zinc-500">Waiting and running since this page was opened</p>
              <LineChart testId="chart-queue-history" xTime x={samples.map((s) => s.at)} xLabel="time" yLabels={["entries"]} height={200} series={sampledKinds.map((k, i) => ({ label: k, color: palette[i % palette.length], values: samples.map((s) => s.waiting[k] ?? 0) }))} />
            </div>
          )}
        </CardBody>
      </Card>

      <Card>
        <CardHeader title="Jobs finished per minute, last hour" description="By outcome, every kind together." />
        <CardBody>
          <LineChart
            testId="chart-throughput"
            xTime
            x={throughput.x}
            xLabel="time"
            yLabels={["jobs per minute"]}
            height={220}
            series={[
              { label: "succeeded", color: "#16a34a", values: throughput.succeeded },
              { label: "failed", color: "#dc2626", values: throughput.failed },
              { label: "cancelled", color: "#a1a1aa", values: throughput.cancelled, dash: [6, 4] },
            ]}
          />
        </CardBody>
      </Card>

      <Card>
        <CardHeader title="Job durations" description="From a job's first start to its end, retries included: the median and the 95th percentile by kind, estimated from the histogram's buckets as Prometheus does." />
        <CardBody>
          {data.durations.series.some((s) => s.status === "succeeded") ? (
            <BarChart
              testId="chart-durations"
              log
              format={seconds}
              xLabel="seconds (log scale)"
              rows={data.durations.series.filter((s) => s.status === "succeeded").map((s) => ({ label: `${kindTitle(s.kind)} (${s.counts.reduce((a, b) => a + b, 0)})`, values: [s.p50 ?? 0, s.p95 ?? 0] }))}
              series={[{ label: "median", color: "#2563eb" }, { label: "95th percentile", color: "#93c5fd" }]}
            />
          ) : (
            <p className="text-sm text-zinc-500">No job has finished yet.</p>
          )}
        </CardBody>
      </Card>

      <Card>
        <CardHeader title="Processes" description="What each web and worker process reports of itself: streams it holds open, bytes it received, requests it refused for a rate limit, jobs it handed on." />
        <CardBody>
          {perProcess.length ? (
            <table className="w-full text-left text-sm" data-testid="process-table">
              <thead className="text-xs text-zinc-500">
                <tr><th className="py-1 font-medium">Process</th><th className="font-medium">Open streams</th><th className="font-medium">Upload bytes</th><th className="font-medium">Rate-limit refusals</th><th className="font-medium">Jobs handed on</th></tr>
              </thead>
              <tbody>
                {perProcess.map((p) => (
                  <tr key={p} className="border-t border-zinc-100 dark:border-zinc-800">
                    <td className="py-1.5 font-mono text-xs">{p}</td>
                    <td>{sumOf(p, "gantry_sse_subscribers")}</td>
                    <td>{bytes(sumOf(p, "gantry_upload_bytes_total"))}</td>
                    <td>{sumOf(p, "gantry_rate_limit_refusals_total")}</td>
                    <td>{sumOf(p, "gantry_worker_jobs_handed_on_total")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p className="text-sm text-zinc-500">No process has reported figures in the last few seconds.</p>
          )}
          <p className="mt-3 text-xs text-zinc-500">Prometheus can scrape the same figures from /api/metrics with the METRICS_TOKEN setting.</p>
        </CardBody>
      </Card>
    </div>
  );
}

function oldest(queue: { oldestWaitingSeconds: number | null }[]): string {
  const ages = queue.map((q) => q.oldestWaitingSeconds).filter((a): a is number => a !== null);
  return ages.length ? `waited ${seconds(Math.max(...ages))}` : "none waiting";
}

function Figure({ label, value, note, testId }: { label: string; value: string; note: string; testId: string }) {
  return (
    <Card data-testid={testId}>
      <CardBody>
        <p className="text-xs text-zinc-500">{label}</p>
        <p className="mt-1 text-2xl font-semibold tabular-nums">{value}</p>
        <p className="mt-1 text-xs text-zinc-500">{note}</p>
      </CardBody>
    </Card>
  );
}
