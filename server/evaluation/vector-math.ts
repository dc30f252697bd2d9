// Small, deterministic vector tools for comparing episodes: distances, k-means with its
// silhouette, and a 2-D principal-component map. Plain TypeScript; no randomness between runs.

export type Vector = Float64Array;

/** Episodes compared pairwise at most; more are thinned evenly (a 1500² distance matrix is 9 MB of float32). */
export const MAX_PAIRWISE = 1500;
/** Largest k tried: more clusters than this says little about a dataset of tens to thousands of episodes. */
export const MAX_CLUSTERS = 6;
/** k-means starts per k (k-means++ seeding), the best inertia kept: enough for a handful of clusters to settle. */
const KMEANS_RESTARTS = 4;
/** Lloyd iterations at most per start; small clusterings converge in far fewer. */
const KMEANS_ITERATIONS = 50;
/** Power iterations per principal component: the map is for the eye, and converges well within this. */
const PCA_ITERATIONS = 100;

export function norm(v: Vector): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

export function distance(a: Vector, b: Vector): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

/** At most `max` of the items, evenly spaced (all of them when there are few enough). */
export function thin<T>(items: T[], max = MAX_PAIRWISE): T[] {
  if (items.length <= max) return items;
  return Array.from({ length: max }, (_, i) => items[Math.floor((i * items.length) / max)]);
}

/** Distances between every pair (upper triangle, row by row) of at most MAX_PAIRWISE vectors. */
export function pairwiseDistances(vectors: Vector[]): Float64Array {
  const v = thin(vectors);
  const out = new Float64Array((v.length * (v.length - 1)) / 2);
  let k = 0;
  for (let i = 0; i < v.length; i++) for (let j = i + 1; j < v.length; j++) out[k++] = distance(v[i], v[j]);
  return out;
}

/** A seeded generator (mulberry32), so clusterings are the same on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** k-means++ seeding then Lloyd's iterations; returns each point's cluster and the inertia. */
function kmeans(points: Vector[], k: number, random: () => number): { labels: Int32Array; inertia: number } {
  const centres: Vector[] = [Float64Array.from(points[Math.floor(random() * points.length)])];
  while (centres.length < k) {
    const d2 = points.map((p) => Math.min(...centres.map((c) => distance(p, c) ** 2)));
    const total = d2.reduce((a, b) => a + b, 0);
    let r = random() * total;
    const next = total > 0 ? d2.findIndex((d) => (r -= d) <= 0) : Math.floor(random() * points.length);
    centres.push(Float64Array.from(points[next < 0 ? points.length - 1 : next]));
  }
  const labels = new Int32Array(points.length).fill(-1);
  let inertia = 0;
  for (let iteration = 0; iteration < KMEANS_ITERATIONS; iteration++) {
    let changed = false;
    inertia = 0;
    points.forEach((p, i) => {
      let best = 0;
      let bestD = Infinity;
      centres.forEach((c, j) => {
        const d = distance(p, c);
        if (d < bestD) [best, bestD] = [j, d];
      });
      inertia += bestD ** 2;
      if (labels[i] !== best) [labels[i], changed] = [best, true];
    });
    if (!changed) break;
    centres.forEach((c, j) => {
      const members = points.filter((_, i) => labels[i] === j);
      if (!members.length) return; // an empty cluster keeps its centre
      c.fill(0);
      for (const m of members) for (let d = 0; d < c.length; d++) c[d] += m[d] / members.length;
    });
  }
  return { labels, inertia };
}

/** Mean silhouette of a clustering over a full distance matrix (a point alone in its cluster scores 0). */
function silhouette(matrix: Float32Array, n: number, labels: Int32Array, k: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    const sums = new Float64Array(k);
    const counts = new Int32Array(k);
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      sums[labels[j]] += matrix[i * n + j];
      counts[labels[j]]++;
    }
    const own = labels[i];
    if (!counts[own]) continue;
    const a = sums[own] / counts[own];
    let b = Infinity;
    for (let c = 0; c < k; c++) if (c !== own && counts[c]) b = Math.min(b, sums[c] / counts[c]);
    if (Number.isFinite(b) && Math.max(a, b) > 0) total += (b - a) / Math.max(a, b);
  }
  return total / n;
}

/** The k in 2..min(MAX_CLUSTERS, n − 1) whose k-means has the best silhouette; null under three points. */
export function bestClustering(vectors: Vector[]): { k: number; silhouette: number; sizes: number[] } | null {
  const points = thin(vectors);
  const n = points.length;
  if (n < 3) return null;
  const matrix = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) matrix[i * n + j] = matrix[j * n + i] = distance(points[i], points[j]);
  const random = seeded(1);
  let best: { k: number; silhouette: number; sizes: number[] } | null = null;
  for (let k = 2; k <= Math.min(MAX_CLUSTERS, n - 1); k++) {
    let fit = kmeans(points, k, random);
    for (let r = 1; r < KMEANS_RESTARTS; r++) {
      const again = kmeans(points, k, random);
      if (again.inertia < fit.inertia) fit = again;
    }
    const s = silhouette(matrix, n, fit.labels, k);
    if (!best || s > best.silhouette) best = { k, silhouette: s, sizes: Array.from({ length: k }, (_, c) => fit.labels.filter((l) => l === c).length) };
  }
  return best;
}

/** The leading principal direction of centred rows, orthogonal to `against`, by power iteration from the longest row. */
function principalDirection(rows: Vector[], against: Vector | null): Vector | null {
  const orthogonalise = (v: Vector) => {
    if (!against) return;
    let dot = 0;
    for (let d = 0; d < v.length; d++) dot += v[d] * against[d];
    for (let d = 0; d < v.length; d++) v[d] -= dot * against[d];
  };
  const normalise = (v: Vector) => {
    const length = norm(v);
    if (length < 1e-12) return false;
    for (let d = 0; d < v.length; d++) v[d] /= length;
    return true;
  };
  let v: Vector = new Float64Array(rows[0]?.length ?? 0);
  for (const r of rows) {
    const candidate = Float64Array.from(r);
    orthogonalise(candidate);
    if (norm(candidate) > norm(v)) v = candidate;
  }
  if (!normalise(v)) return null;
  for (let iteration = 0; iteration < PCA_ITERATIONS; iteration++) {
    const next: Vector = new Float64Array(v.length);
    for (const r of rows) {
      let dot = 0;
      for (let d = 0; d < r.length; d++) dot += r[d] * v[d];
      for (let d = 0; d < r.length; d++) next[d] += dot * r[d];
    }
    orthogonalise(next);
    if (!normalise(next)) return v;
    v = next;
  }
  return v;
}

/** Each vector's coordinates on the first two principal components (fitted on at most MAX_PAIRWISE of them). */
export function principalMap(vectors: Vector[]): [number, number][] {
  if (!vectors.length) return [];
  const dims = vectors[0].length;
  const centre = new Float64Array(dims);
  for (const v of vectors) for (let d = 0; d < dims; d++) centre[d] += v[d] / vectors.length;
  const centred = (v: Vector) => Float64Array.from(v, (x, d) => x - centre[d]);
  const fitted = thin(vectors).map(centred);
  const first = principalDirection(fitted, null);
  const second = first ? principalDirection(fitted, first) : null;
  const project = (v: Vector, axis: Vector | null) => (axis ? v.reduce((a, x, d) => a + x * axis[d], 0) : 0);
  return vectors.map((v) => {
    const c = centred(v);
    return [project(c, first), project(c, second)];
  });
}
