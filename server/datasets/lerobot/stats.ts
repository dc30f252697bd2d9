// Per-episode statistics as LeRobot writes them (meta/episodes stats/<feature>/<stat> and
// meta/stats.json): min, max, mean, std, count and the 1/10/50/90/99 % quantiles, per dimension.
// Images: per channel over sampled frames, scaled to 0..1, shaped [3][1][1].

export const QUANTILES = [
  ["q01", 0.01],
  ["q10", 0.1],
  ["q50", 0.5],
  ["q90", 0.9],
  ["q99", 0.99],
] as const;

export interface FeatureStats {
  min: number[];
  max: number[];
  mean: number[];
  std: number[];
  count: [number];
  q01: number[];
  q10: number[];
  q50: number[];
  q90: number[];
  q99: number[];
}

/** Linear interpolation between closest ranks, as numpy.quantile does by default. */
function quantileSorted(sorted: Float64Array, q: number): number {
  if (sorted.length === 1) return sorted[0];
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Stats of `rows` (one vector per frame, all the same width). */
export function vectorStats(rows: ArrayLike<number>[]): FeatureStats {
  const width = rows[0]?.length ?? 0;
  const n = rows.length;
  const out: FeatureStats = { min: [], max: [], mean: [], std: [], count: [n], q01: [], q10: [], q50: [], q90: [], q99: [] };
  const column = new Float64Array(n);
  for (let d = 0; d < width; d++) {
    let sum = 0;
    for (let i = 0; i < n; i++) {
      column[i] = rows[i][d];
      sum += column[i];
    }
    const mean = sum / n;
    let sq = 0;
    for (let i = 0; i < n; i++) sq += (column[i] - mean) ** 2;
    column.sort();
    out.min.push(column[0]);
    out.max.push(column[n - 1]);
    out.mean.push(mean);
    out.std.push(Math.sqrt(sq / n));
    for (const [key, q] of QUANTILES) out[key].push(quantileSorted(column, q));
  }
  return out;
}

export function scalarStats(values: ArrayLike<number>): FeatureStats {
  return vectorStats(Array.from(values, (v) => [v]));
}

/**
 * Image stats from a per-channel histogram of 8-bit values (exact quantiles: every value is
 * one of 256). `pixels` is packed RGB.
 */
export function imageStats(pixels: Uint8Array, frames: number): FeatureStats {
  const hist = [new Float64Array(256), new Float64Array(256), new Float64Array(256)];
  for (let i = 0; i + 2 < pixels.length; i += 3) {
    hist[0][pixels[i]]++;
    hist[1][pixels[i + 1]]++;
    hist[2][pixels[i + 2]]++;
  }
  const out: FeatureStats = { min: [], max: [], mean: [], std: [], count: [frames], q01: [], q10: [], q50: [], q90: [], q99: [] };
  for (const h of hist) {
    let total = 0;
    let sum = 0;
    for (let v = 0; v < 256; v++) {
      total += h[v];
      sum += v * h[v];
    }
    const mean = sum / total;
    let sq = 0;
    let min = 255;
    let max = 0;
    for (let v = 0; v < 256; v++) {
      if (!h[v]) continue;
      sq += h[v] * (v - mean) ** 2;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    out.min.push(min / 255);
    out.max.push(max / 255);
    out.mean.push(mean / 255);
    out.std.push(Math.sqrt(sq / total) / 255);
    for (const [key, q] of QUANTILES) {
      // numpy-style rank (total - 1) * q, interpolated between the two values around it.
      const pos = (total - 1) * q;
      const valueAt = (rank: number) => {
        let seen = 0;
        for (let v = 0; v < 256; v++) {
          seen += h[v];
          if (seen > rank) return v;
        }
        return 255;
      };
      const lo = valueAt(Math.floor(pos));
      const hi = valueAt(Math.min(Math.floor(pos) + 1, total - 1));
      out[key].push((lo + (hi - lo) * (pos - Math.floor(pos))) / 255);
    }
  }
  return out;
}

/**
 * Dataset-wide stats from per-episode ones, as LeRobot's aggregate_stats does: min of mins,
 * max of maxes, count-weighted means, the pooled variance, count-weighted quantiles.
 */
export function aggregateStats(parts: FeatureStats[]): FeatureStats {
  const total = parts.reduce((a, p) => a + p.count[0], 0);
  const width = parts[0].mean.length;
  const out: FeatureStats = { min: [], max: [], mean: [], std: [], count: [total], q01: [], q10: [], q50: [], q90: [], q99: [] };
  for (let d = 0; d < width; d++) {
    const mean = parts.reduce((a, p) => a + p.mean[d] * p.count[0], 0) / total;
    const variance = parts.reduce((a, p) => a + (p.std[d] ** 2 + (p.mean[d] - mean) ** 2) * p.count[0], 0) / total;
    out.min.push(Math.min(...parts.map((p) => p.min[d])));
    out.max.push(Math.max(...parts.map((p) => p.max[d])));
    out.mean.push(mean);
    out.std.push(Math.sqrt(variance));
    for (const [key] of QUANTILES) out[key].push(parts.reduce((a, p) => a + p[key][d] * p.count[0], 0) / total);
  }
  return out;
}

/** LeRobot's sample_indices: how many frames, and which, image stats look at. */
export function sampleIndices(length: number): number[] {
  const minSamples = Math.min(100, length);
  const count = Math.max(minSamples, Math.min(Math.floor(length ** 0.75), 10_000));
  if (count <= 1) return [0];
  return Array.from({ length: count }, (_, i) => Math.round((i * (length - 1)) / (count - 1)));
}
