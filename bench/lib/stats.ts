import fs from "node:fs";

// Shared by the benchmarks: percentiles, the machine's busy CPU time, the ours-versus-reference row, and the output format
// (a readable table, then one JSON line, always the last).

export interface BenchResult {
  name: string;
  ours: number;
  reference: number;
  unit: string;
  ratio: number | null;
  goal?: string;
}

/** Nearest-rank percentile (`p` in 0..100) of the finite values; NaN when there are none. */
export function percentile(values: ArrayLike<number>, p: number): number {
  const sorted = Array.from(values).filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** CPU seconds the whole machine has spent busy (all cores), from /proc/stat: a difference of two readings is what a run cost. */
export function busyCpuSeconds(): number {
  const [, ...fields] = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = fields.map(Number);
  return (user + nice + system + irq + softirq + steal) / 100;
}

/**
 * CPU seconds a process has spent (user and system), with those of its children it has waited
 * for, from /proc/<pid>/stat: what one program and the processes it ran cost, whatever else
 * the machine is doing.
 */
export function processCpuSeconds(pid: number | "self" = "self"): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces): state is field 3, utime field 14.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
  return (utime + stime + cutime + cstime) / 100;
}

const round = (n: number, digits = 2) => (Number.isFinite(n) ? Number(n.toFixed(digits)) : n);

export function compare(name: string, ours: number, reference: number, unit: string, goal?: string): BenchResult {
  const ratio = reference > 0 && Number.isFinite(ours) ? round(ours / reference) : null;
  return { name, ours: round(ours), reference: round(reference), unit, ratio, ...(goal ? { goal } : {}) };
}

/** Prints the table, then the JSON line that tools read: nothing may be printed after it. */
export function printResults(bench: string, results: BenchResult[]): void {
  const rows = [["metric", "ours", "reference", "ratio", "goal"], ...results.map((r) => [r.name, `${r.ours} ${r.unit}`, `${r.reference} ${r.unit}`, r.ratio === null ? "n/a" : `${r.ratio}×`, r.goal ?? ""])];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const [i, row] of rows.entries()) {
    console.log(row.map((cell, j) => (j === 0 ? cell.padEnd(widths[j]) : cell.padStart(widths[j]))).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
  console.log(JSON.stringify({ bench, results }));
}
