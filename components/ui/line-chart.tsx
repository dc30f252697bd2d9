"use client";

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

// A streaming line chart (uPlot): axes with units, a cursor read-out of every series at the
// hovered x, and new points drawn in place as they arrive (no re-mount, no flicker).
// Dragging across the plot zooms into that span; a double click zooms back out.

export interface Series {
  label: string;
  /** y values, one per x. */
  values: (number | null)[];
  color: string;
  unit?: string;
  /** Which y axis: 0 left, 1 right. */
  axis?: 0 | 1;
  /** Dash pattern in pixels, e.g. [6, 4]; solid without. */
  dash?: number[];
  /** Line width in pixels (2 without). */
  width?: number;
  /** A dot at every value, for sparse series: a lone value between gaps draws no line. */
  points?: boolean;
}

/** A shaded span of x behind the series (e.g. when a device was offline). */
export interface Band {
  from: number;
  to: number;
  color: string;
}

export interface LineChartProps {
  x: number[];
  xLabel: string;
  series: Series[];
  yLabels: [string, string?];
  height?: number;
  logY?: boolean;
  testId?: string;
  /** x values are Unix seconds: the axis and read-out show clock times. */
  xTime?: boolean;
  /** How the read-out writes an x value (its default is the number, or the time with xTime). */
  formatX?: (x: number) => string;
  /** x values are places 0, 1, 2, … each named by formatX (joints, say): the axis names each one, half a place of margin either side. */
  xPlaces?: boolean;
  bands?: Band[];
  /** A vertical line at this x (e.g. a playhead); moved without redrawing the series. */
  marker?: number | null;
  /** Called with the x clicked on (a click, not a drag, which zooms). */
  onPick?: (x: number) => void;
  /** Called with the index of the x under the cursor, null when it leaves. */
  onCursor?: (index: number | null) => void;
  /** Charts with the same key move their cursors together. */
  syncKey?: string;
}

const formatValue = (v: number | null) => (v == null ? "–" : Math.abs(v) < 0.01 && v !== 0 ? v.toExponential(2) : v.toFixed(4).replace(/\.?0+$/, ""));

function moveMarker(u: uPlot, line: HTMLDivElement | null, value: number | null) {
  if (!line) return;
  const left = value == null ? NaN : u.valToPos(value, "x");
  const isShown = Number.isFinite(left) && left >= 0 && left <= u.over.clientWidth;
  line.style.display = isShown ? "block" : "none";
  if (isShown) line.style.transform = `translateX(${left}px)`;
}

export function LineChart({ x, xLabel, series, yLabels, height = 240, logY = false, testId, xTime = false, formatX, xPlaces = false, bands, marker = null, onPick, onCursor, syncKey }: LineChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  // What may change on every render without rebuilding the chart is read through refs.
  const latest = useRef({ bands, marker, onPick, onCursor, formatX });
  latest.current = { bands, marker, onPick, onCursor, formatX };
  const markerEl = useRef<HTMLDivElement | null>(null);
  const shape = JSON.stringify([xLabel, yLabels, series.map((s) => [s.label, s.axis ?? 0, s.unit, s.color, s.dash, s.width, s.points]), logY, xTime, Boolean(formatX), xPlaces, syncKey]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = el.clientWidth || 600;
    const hasRight = series.some((s) => s.axis === 1);
    const placeMarker = (u: uPlot) => moveMarker(u, markerEl.current, latest.current.marker);
    const opts: uPlot.Options = {
      width,
      height,
      scales: { x: { time: xTime, ...(xPlaces ? { range: (_u: uPlot, min: number, max: number): uPlot.Range.MinMax => [min - 0.5, max + 0.5] } : {}) }, y: logY ? { distr: 3 } : {}, ...(hasRight ? { y2: {} } : {}) },
      axes: [
        {
          label: xLabel,
          stroke: "#71717a",
          grid: { stroke: "#71717a22" },
          // A tick and a name at every place however narrow the places are (uPlot would otherwise
          // drop ticks closer than 50 px); names slanted, so long ones do not run into each other.
          ...(xPlaces
            ? { incrs: [1], space: 4, rotate: 30, size: 90, values: (_u: uPlot, splits: number[]) => splits.map((v) => (Number.isInteger(v) ? (latest.current.formatX?.(v) ?? String(v)) : "")) }
            : {}),
        },
        { label: yLabels[0], stroke: "#71717a", grid: { stroke: "#71717a22" }, size: 60 },
        ...(hasRight ? [{ label: yLabels[1] ?? "", scale: "y2", side: 1, stroke: "#71717a", grid: { show: false }, size: 60 } as uPlot.Axis] : []),
      ],
      series: [
        { label: xLabel, ...(formatX ? { value: (_u: uPlot, v: number | null) => (v == null ? "–" : latest.current.formatX!(v)) } : {}) },
        ...series.map((s) => ({
          label: s.unit ? `${s.label} (${s.unit})` : s.label,
          stroke: s.color,
          width: s.width ?? 2,
          dash: s.dash,
          ...(s.points ? { points: { show: true, size: 5 } } : {}),
          scale: s.axis === 1 ? "y2" : "y",
          value: (_u: uPlot, v: number | null) => formatValue(v),
        })),
      ],
      // A click that moves a pixel or two is still a click, not a zoom into nothing.
      cursor: { drag: { x: true, y: false, dist: 5 }, ...(syncKey ? { sync: { key: syncKey } } : {}) },
      legend: { live: true },
      hooks: {
        drawClear: [
          (u) => {
            const spans = latest.current.bands;
            if (!spans?.length) return;
            const { ctx, bbox } = u;
            ctx.save();
            for (const b of spans) {
              const a = u.valToPos(b.from, "x", true);
              const z = u.valToPos(b.to, "x", true);
              const left = Math.max(bbox.left, Math.min(a, z));
              const right = Math.min(bbox.left + bbox.width, Math.max(a, z));
              if (!(right > left)) continue;
              ctx.fillStyle = b.color;
              ctx.fillRect(left, bbox.top, right - left, bbox.height);
            }
            ctx.restore();
          },
        ],
        setScale: [(u, key) => key === "x" && placeMarker(u)],
        setSize: [placeMarker],
        setCursor: [(u) => latest.current.onCursor?.(u.cursor.idx ?? null)],
      },
    };
    const u = new uPlot(opts, [x, ...series.map((s) => s.values)] as uPlot.AlignedData, el);
    plot.current = u;

    const line = document.createElement("div");
    line.dataset.testid = "chart-marker";
    line.style.cssText = "position:absolute;top:0;bottom:0;left:0;width:0;border-left:2px solid #ef4444;pointer-events:none;display:none";
    u.over.appendChild(line);
    markerEl.current = line;
    placeMarker(u);

    let downAt: number | null = null;
    const onDown = (e: MouseEvent) => void (downAt = e.clientX);
    const onUp = (e: MouseEvent) => {
      if (downAt === null || Math.abs(e.clientX - downAt) >= 5) return;
      downAt = null;
      const left = e.clientX - u.over.getBoundingClientRect().left;
      latest.current.onPick?.(u.posToVal(left, "x"));
    };
    u.over.addEventListener("mousedown", onDown);
    u.over.addEventListener("mouseup", onUp);
    const resize = new ResizeObserver(() => u.setSize({ width: el.clientWidth || width, height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.over.removeEventListener("mousedown", onDown);
      u.over.removeEventListener("mouseup", onUp);
      u.destroy();
      plot.current = null;
      markerEl.current = null;
    };
    // Rebuilt only when the chart's shape changes; data arrives through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData([x, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [x, series]);

  useEffect(() => {
    plot.current?.redraw(false, false);
  }, [bands]);

  useEffect(() => {
    if (plot.current) moveMarker(plot.current, markerEl.current, marker);
  }, [marker]);

  const described = `${yLabels.filter(Boolean).join(" and ")} against ${xLabel}`;
  return <div ref={box} role="figure" aria-label={described} data-testid={testId} className="w-full overflow-hidden text-xs" />;
}
