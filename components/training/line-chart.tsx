"use client";

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

// A streaming line chart (uPlot): axes with units, a cursor read-out of every series at the
// hovered x, and new points drawn in place as they arrive (no re-mount, no flicker).

export interface Series {
  label: string;
  /** y values, one per x. */
  values: (number | null)[];
  color: string;
  unit?: string;
  /** Which y axis: 0 left, 1 right. */
  axis?: 0 | 1;
}

export function LineChart({ x, xLabel, series, yLabels, height = 240, logY = false, testId }: { x: number[]; xLabel: string; series: Series[]; yLabels: [string, string?]; height?: number; logY?: boolean; testId?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = JSON.stringify([xLabel, yLabels, series.map((s) => [s.label, s.axis ?? 0, s.unit]), logY]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = el.clientWidth || 600;
    const hasRight = series.some((s) => s.axis === 1);
    const opts: uPlot.Options = {
      width,
      height,
      scales: { x: { time: false }, y: logY ? { distr: 3 } : {}, ...(hasRight ? { y2: {} } : {}) },
      axes: [
        { label: xLabel, stroke: "#71717a", grid: { stroke: "#71717a22" } },
        { label: yLabels[0], stroke: "#71717a", grid: { stroke: "#71717a22" }, size: 60 },
        ...(hasRight ? [{ label: yLabels[1] ?? "", scale: "y2", side: 1, stroke: "#71717a", grid: { show: false }, size: 60 } as uPlot.Axis] : []),
      ],
      series: [
        { label: xLabel },
        ...series.map((s) => ({
          label: s.unit ? `${s.label} (${s.unit})` : s.label,
          stroke: s.color,
          width: 2,
          scale: s.axis === 1 ? "y2" : "y",
          value: (_u: uPlot, v: number | null) => (v == null ? "–" : Math.abs(v) < 0.01 && v !== 0 ? v.toExponential(2) : v.toFixed(4).replace(/\.?0+$/, "")),
        })),
      ],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
    };
    plot.current = new uPlot(opts, [x, ...series.map((s) => s.values)] as uPlot.AlignedData, el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth || width, height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // Rebuilt only when the chart's shape changes; data arrives through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData([x, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [x, series]);

  return <div ref={box} data-testid={testId} className="w-full overflow-hidden text-xs" />;
}
