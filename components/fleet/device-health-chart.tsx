"use client";

import { useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { LineChart, type Band, type Series } from "@/components/ui/line-chart";
import { errorMessage, useTRPC } from "@/components/trpc";
import { HEALTH_WINDOWS_HOURS, type DeviceState } from "@/server/fleet/fleet.schemas";
import { DeviceStateBadge } from "./fleet-badges";

// A device's health checks over time, on two charts whose cursors move together: how long each
// check took beside the load, and the free memory beside the free disk. Shading behind the lines
// says when the device was degraded, offline or not checked; the line under the charts says what
// the check under the cursor found (or the latest one), reason included.

type Window = (typeof HEALTH_WINDOWS_HOURS)[number];
const WINDOW_NAMES: Record<Window, string> = { 1: "1 hour", 24: "24 hours", 168: "7 days", 336: "14 days" };
const SHADES: Partial<Record<DeviceState, string>> = { degraded: "rgba(245, 158, 11, 0.2)", offline: "rgba(239, 68, 68, 0.2)", unknown: "rgba(113, 113, 122, 0.15)" };
const GIB = 1024 ** 3;

interface Row {
  at: Date;
  checks: number;
  state: DeviceState;
  error: string | null;
}

export function DeviceHealthChart({ deviceId }: { deviceId: string }) {
  const trpc = useTRPC();
  const [hours, setHours] = useState<Window>(24);
  const [cursor, setCursor] = useState<number | null>(null);
  const history = useQuery({ ...trpc.fleet.deviceHealth.queryOptions({ deviceId, hours }), refetchInterval: 30_000 });

  const chart = useMemo(() => {
    const h = history.data;
    if (!h) return null;
    // A point stands for its bucket or its check interval, whichever is longer; a longer silence
    // (no checks: the worker was stopped) breaks the lines instead of bridging it.
    const step = Math.max(h.bucketSec, h.intervalSec);
    const x: number[] = [];
    const rows: (Row | null)[] = [];
    const cols = { latency: [] as (number | null)[], load: [] as (number | null)[], memory: [] as (number | null)[], disk: [] as (number | null)[] };
    const bands: Band[] = [];
    let previous: number | null = null;
    for (const p of h.points) {
      const t = p.at.getTime() / 1000;
      if (previous !== null && t - previous > 3 * step) {
        x.push(previous + step);
        rows.push(null);
        for (const c of Object.values(cols)) c.push(null);
      }
      x.push(t);
      rows.push({ at: p.at, checks: p.checks, state: p.state, error: p.error });
      cols.latency.push(p.latencyMs);
      cols.load.push(p.load1);
      cols.memory.push(p.memoryAvailableBytes === null ? null : p.memoryAvailableBytes / GIB);
      cols.disk.push(p.diskFreeBytes === null ? null : p.diskFreeBytes / GIB);
      const shade = SHADES[p.state];
      if (shade) bands.push({ from: t - step / 2, to: t + step / 2, color: shade });
      previous = t;
    }
    const timing: Series[] = [
      { label: "check time", unit: "ms", values: cols.latency, color: "#0284c7" },
      { label: "load (1 min)", values: cols.load, color: "#f59e0b", axis: 1 },
    ];
    const resources: Series[] = [
      { label: "free memory", unit: "GiB", values: cols.memory, color: "#8b5cf6" },
      { label: "free disk", unit: "GiB", values: cols.disk, color: "#10b981", axis: 1 },
    ];
    return { x, rows, bands, timing, resources, bucketSec: h.bucketSec };
  }, [history.data]);

  const latest = chart?.rows.findLast((r): r is Row => r !== null) ?? null;
  const shown = (cursor !== null ? chart?.rows[cursor] : latest) ?? null;

  return (
    <div className="space-y-3">
      <div className="flex flex-wrap items-center gap-2" role="group" aria-label="Health window">
        {HEALTH_WINDOWS_HOURS.map((w) => (
          <Button key={w} size="sm" variant={w === hours ? "primary" : "secondary"} aria-pressed={w === hours} onClick={() => setHours(w)}>
            {WINDOW_NAMES[w]}
          </Button>
        ))}
        <span className="text-xs text-zinc-500">
          Shaded: <span className="text-amber-600">degraded</span>, <span className="text-red-600">offline</span>, <span className="text-zinc-500">not checked</span>.
          {chart && chart.bucketSec > 60 ? ` Each point is the worst of the checks in ${formatSpan(chart.bucketSec)}.` : ""}
        </span>
      </div>
      {history.error && <Alert>{errorMessage(history.error)}</Alert>}
      {!chart && !history.error && <p className="py-10 text-center text-sm text-zinc-500">Loading…</p>}
      {chart && chart.x.length === 0 && <p className="py-10 text-center text-sm text-zinc-500">No health checks in the last {WINDOW_NAMES[hours]}. The worker checks each device about once a minute once its host key is pinned.</p>}
      {chart && chart.x.length > 0 && (
        <>
          <LineChart x={chart.x} xLabel="time" xTime series={chart.timing} yLabels={["check time (ms)", "load (1 min)"]} bands={chart.bands} onCursor={setCursor} syncKey={`device-health-${deviceId}`} height={200} testId="health-chart-timing" />
          <LineChart x={chart.x} xLabel="time" xTime series={chart.resources} yLabels={["free memory (GiB)", "free disk (GiB)"]} bands={chart.bands} onCursor={setCursor} syncKey={`device-health-${deviceId}`} height={200} testId="health-chart-resources" />
        </>
      )}
      {shown && (
        <p className="flex flex-wrap items-center gap-2 text-sm" data-testid="health-reading">
          <span className="text-zinc-500">{cursor !== null ? "At" : "Latest check,"} {shown.at.toLocaleString()}</span>
          <DeviceStateBadge state={shown.state} />
          {shown.checks > 1 && <span className="text-zinc-500">worst of {shown.checks} checks</span>}
          {shown.error && <span className="w-full text-zinc-600 dark:text-zinc-400" data-field="reason">{shown.error}</span>}
        </p>
      )}
    </div>
  );
}

function formatSpan(sec: number): string {
  return sec < 3600 ? `${Math.round(sec / 60)} minutes` : `${(sec / 3600).toFixed(1).replace(/\.0$/, "")} hours`;
}
