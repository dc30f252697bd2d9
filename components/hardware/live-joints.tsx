"use client";

import type { ReactNode } from "react";
import type { JointSample } from "@/server/hardware/hardware.schemas";
import { LineChart } from "@/components/ui/line-chart";
import { useJointSamples } from "./use-agent-command";

const COLORS = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

/** Subscribes to a command's joint readings and hands the latest (and the extremes seen) to its children; with `chart`, a rolling plot below. */
export function LiveJoints({ commandId, children, chart = false, names = [] }: { commandId: string; children: (s: { latest: JointSample | null; extremes: { min: number[]; max: number[] } | null }) => ReactNode; chart?: boolean; names?: string[] }) {
  const { samples, latest, extremes, streamError } = useJointSamples(commandId);
  const hasValues = samples.some((s) => s.values);
  const t0 = samples[0]?.t ?? 0;
  return (
    <div className="space-y-3">
      {children({ latest, extremes })}
      {chart && hasValues && samples.length > 1 && (
        <LineChart
          testId="live-joints-chart"
          x={samples.map((s) => (s.t - t0) / 1000)}
          xLabel="time (s)"
          yLabels={["position (−100..100, gripper 0..100)"]}
          height={200}
          series={names.map((name, i) => ({ label: name, values: samples.map((s) => s.values?.[i] ?? null), color: COLORS[i % COLORS.length]! }))}
        />
      )}
      {latest && <p className="text-xs text-zinc-500" data-field="rate">{rateOf(samples)}</p>}
      {streamError && (
        <p role="alert" className="text-xs text-red-600" data-field="stream-error">
          {streamError}
        </p>
      )}
    </div>
  );
}

function rateOf(samples: JointSample[]): string {
  if (samples.length < 2) return "";
  const span = (samples.at(-1)!.t - samples[0]!.t) / 1000;
  return span > 0 ? `${Math.round((samples.length - 1) / span)} readings/s` : "";
}

/** One horizontal bar per joint, with marks (e.g. the middle) and the value written beside it. */
export function JointBars({ names, values, min, max, marks = [], format, testId, warn }: { names: string[]; values: number[]; min: number; max: number; marks?: number[]; format: (v: number) => string; testId?: string; warn?: (i: number) => boolean }) {
  const pos = (v: number) => `${((Math.min(max, Math.max(min, v)) - min) / (max - min)) * 100}%`;
  return (
    <ul className="space-y-1.5" data-testid={testId}>
      {names.map((name, i) => (
        <li key={name} data-joint={name} className="grid grid-cols-[8rem_1fr_4rem] items-center gap-3 text-xs">
          <span className="font-mono">{name}</span>
          <div className="relative h-2 rounded bg-zinc-200 dark:bg-zinc-800">
            {marks.map((m) => <div key={m} className="absolute top-[-3px] h-3.5 w-px bg-zinc-500" style={{ left: pos(m) }} />)}
            <div className={`absolute top-[-2px] h-3 w-3 -translate-x-1/2 rounded-full ${warn?.(i) ? "bg-amber-500" : "bg-brand-600"}`} style={{ left: pos(values[i] ?? min) }} />
          </div>
          <span className="text-right tabular-nums" data-field="value">{values[i] !== undefined ? format(values[i]!) : "—"}</span>
        </li>
      ))}
    </ul>
  );
}
