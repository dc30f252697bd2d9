"use client";

import { useMemo, type PointerEvent } from "react";

const W = 600;
const H = 120;
const PAD = 4;

function path(values: number[], min: number, max: number): string {
  const span = max - min || 1;
  const n = values.length;
  let d = "";
  for (let i = 0; i < n; i++) {
    const x = n === 1 ? 0 : (i / (n - 1)) * W;
    const y = PAD + (1 - (values[i] - min) / span) * (H - 2 * PAD);
    d += `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
  }
  return d;
}

/**
 * Action (what was commanded) against state (what the joint did) over an episode, in plain SVG.
 * Pressing or dragging on the plot seeks: `onSeek` gets the fraction of the episode.
 */
export function JointPlot({ name, state, action, position, onSeek }: { name: string; state: number[]; action: number[]; position: number; onSeek: (fraction: number) => void }) {
  const { min, max, statePath, actionPath } = useMemo(() => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of [...state, ...action]) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
    return { min: lo, max: hi, statePath: path(state, lo, hi), actionPath: path(action, lo, hi) };
  }, [state, action]);
  const seekFrom = (e: PointerEvent<SVGSVGElement>) => {
    const box = e.currentTarget.getBoundingClientRect();
    onSeek(Math.min(1, Math.max(0, (e.clientX - box.left) / box.width)));
  };
  const x = Math.min(1, Math.max(0, position)) * W;
  return (
    <figure className="space-y-1" data-joint={name}>
      <figcaption className="flex items-baseline justify-between text-xs">
        <span className="font-medium">{name}</span>
        <span className="tabular-nums text-zinc-500">{min.toFixed(1)} … {max.toFixed(1)}</span>
      </figcaption>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        preserveAspectRatio="none"
        role="slider"
        aria-label={`${name}: seek the episode`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(position * 100)}
        className="h-24 w-full cursor-crosshair touch-none rounded border border-zinc-200 bg-zinc-50 dark:border-zinc-800 dark:bg-zinc-950"
        onPointerDown={(e) => {
          e.currentTarget.setPointerCapture(e.pointerId);
          seekFrom(e);
        }}
        onPointerMove={(e) => e.buttons === 1 && seekFrom(e)}
      >
        <path d={statePath} fill="none" stroke="currentColor" className="text-sky-600" strokeWidth={1.5} vectorEffect="non-scaling-stroke" data-series="state" />
        <path d={actionPath} fill="none" stroke="currentColor" className="text-amber-500" strokeWidth={1.5} strokeDasharray="4 3" vectorEffect="non-scaling-stroke" data-series="action" />
        <line x1={x} x2={x} y1={0} y2={H} stroke="currentColor" className="text-red-500" strokeWidth={1.5} vectorEffect="non-scaling-stroke" data-testid="playhead" />
      </svg>
    </figure>
  );
}
