// Horizontal bars, one row per category, in plain SVG: an x axis with ticks and a label, the
// categories down the left, a legend. Stacked (parts of one whole) or grouped (side by side).
// Log scale for figures that span orders of magnitude (durations).

export interface BarSeries {
  label: string;
  color: string;
}

export interface BarChartProps {
  rows: { label: string; values: number[] }[];
  series: BarSeries[];
  xLabel: string;
  stacked?: boolean;
  log?: boolean;
  /** How a tick or a value is written (the number itself without). */
  format?: (v: number) => string;
  testId?: string;
}

const WIDTH = 640;
const LEFT = 190;
const RIGHT = 24;
const TOP = 8;
const AXIS = 44;

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
}

function ticksFor(max: number, min: number, log: boolean): number[] {
  if (log) {
    const from = Math.floor(Math.log10(min));
    const to = Math.max(from + 1, Math.ceil(Math.log10(max)));
    return Array.from({ length: to - from + 1 }, (_, i) => 10 ** (from + i));
  }
  const step = niceStep(Math.max(max, 1) / 5);
  return Array.from({ length: Math.ceil(Math.max(max, 1) / step) + 1 }, (_, i) => i * step);
}

export function BarChart({ rows, series, xLabel, stacked = false, log = false, format = (v) => String(v), testId }: BarChartProps) {
  const totals = rows.flatMap((r) => (stacked ? [r.values.reduce((a, b) => a + b, 0)] : r.values));
  const positive = totals.filter((v) => v > 0);
  const ticks = ticksFor(Math.max(0, ...totals), positive.length ? Math.min(...positive) : 1, log);
  const lo = log ? ticks[0] : 0;
  const hi = ticks[ticks.length - 1];
  const plotWidth = WIDTH - LEFT - RIGHT;
  const x = (v: number) => LEFT + (log ? (v <= lo ? 0 : ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotWidth) : (v / hi) * plotWidth);
  const rowHeight = stacked || series.length === 1 ? 24 : 12 * series.length + 10;
  const height = TOP + rows.length * rowHeight + AXIS;
  const axisY = TOP + rows.length * rowHeight;
  const described = `${series.map((s) => s.label).join(", ")} by ${xLabel}, ${rows.length} rows`;
  return (
    <figure data-testid={testId} className="text-xs">
      <svg viewBox={`0 0 ${WIDTH} ${height}`} role="img" aria-label={described} className="w-full">
        {ticks.map((t) => (
          <g key={t}>
            <line x1={x(t)} x2={x(t)} y1={TOP} y2={axisY} stroke="#71717a33" />
            <line x1={x(t)} x2={x(t)} y1={axisY} y2={axisY + 4} stroke="#71717a" />
            <text x={x(t)} y={axisY + 16} textAnchor="middle" fill="#71717a" fontSize={11}>{format(t)}</text>
          </g>
        ))}
        <line x1={LEFT} x2={WIDTH - RIGHT} y1={axisY} y2={axisY} stroke="#71717a" />
        <text x={LEFT + plotWidth / 2} y={axisY + 34} textAnchor="middle" fill="#71717a" fontSize={11}>{xLabel}</text>
        {rows.map((row, r) => {
          const y = TOP + r * rowHeight;
          let start = lo;
          return (
            <g key={row.label}>
              <text x={LEFT - 8} y={y + rowHeight / 2 + 4} textAnchor="end" fill="currentColor" fontSize={11}>{row.label.length > 30 ? `${row.label.slice(0, 29)}…` : row.label}</text>
              {row.values.map((v, i) => {
                if (!(v > 0)) return null;
                const title = `${row.label} · ${series[i].label}: ${format(v)}`;
                if (stacked) {
                  const from = start;
                  start += v;
                  return <rect key={i} x={x(from)} y={y + 4} width={Math.max(1, x(from + v) - x(from))} height={rowHeight - 8} fill={series[i].color}><title>{title}</title></rect>;
                }
                const barY = series.length === 1 ? y + 4 : y + 5 + i * 12;
                const barHeight = series.length === 1 ? rowHeight - 8 : 10;
                return <rect key={i} x={LEFT} y={barY} width={Math.max(1, x(v) - LEFT)} height={barHeight} fill={series[i].color}><title>{title}</title></rect>;
              })}
            </g>
          );
        })}
      </svg>
      <figcaption className="mt-1 flex flex-wrap gap-4 pl-2 text-zinc-500">
        {series.map((s) => (
          <span key={s.label} className="inline-flex items-center gap-1.5">
            <span className="inline-block h-2.5 w-2.5 rounded-sm" style={{ background: s.color }} />
            {s.label}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
