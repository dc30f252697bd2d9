"use client";

import { useMemo } from "react";
import { LineChart, type Series } from "@/components/ui/line-chart";

// An episode's joints over time: what each joint did (state) above what was commanded (action),
// one line per joint, on charts whose cursors move together so both read-outs give the same
// instant. uPlot draws tens of thousands of frames per joint without slowing the page. The y
// axis says "value": LeRobot datasets do not record their joints' unit (degrees, or −100..100
// normalised, depending on how the arm was calibrated), so none is claimed.

const COLORS = ["#0284c7", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444", "#64748b", "#ec4899", "#14b8a6", "#a16207", "#4f46e5"];

interface Frames {
  timestamp: number[];
  state: number[][];
  action: number[][];
}

/** One series per joint, from rows of per-frame values. */
function jointSeries(rows: number[][], names: string[]): Series[] {
  return names.map((name, j) => ({ label: name, values: rows.map((r) => r[j] ?? null), color: COLORS[j % COLORS.length], width: 1.5 }));
}

const formatSeconds = (t: number) => `${t.toFixed(2)} s`;

/**
 * `position` is the playhead in seconds; a click on either chart seeks there (`onSeek`), a drag
 * zooms into the span dragged across and a double click zooms back out.
 */
export function JointPlot({ frames, names, position, onSeek }: { frames: Frames; names: { state: string[]; action: string[] }; position: number; onSeek: (seconds: number) => void }) {
  const state = useMemo(() => jointSeries(frames.state, names.state), [frames.state, names.state]);
  const action = useMemo(() => jointSeries(frames.action, names.action), [frames.action, names.action]);
  const charts = [
    { kind: "state", title: "State: what the joints did", series: state },
    { kind: "action", title: "Action: what was commanded", series: action },
  ] as const;
  return (
    <div className="space-y-4">
      {charts.map((c) =>
        c.series.length ? (
          <figure key={c.kind} data-joint-chart={c.kind} data-joints={c.series.map((s) => s.label).join(",")}>
            <figcaption className="mb-1 text-xs font-medium">{c.title}</figcaption>
            <LineChart
              x={frames.timestamp}
              xLabel="time (s)"
              formatX={formatSeconds}
              yLabels={["value"]}
              series={c.series}
              height={220}
              marker={position}
              onPick={(t) => onSeek(Math.max(0, t))}
              syncKey="episode-joints"
              testId={`joint-chart-${c.kind}`}
            />
          </figure>
        ) : null,
      )}
    </div>
  );
}
