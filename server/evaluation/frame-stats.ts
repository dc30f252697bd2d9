// What the visual metrics keep of a sampled frame: a few numbers and two small vectors, so a
// dataset of any size is judged without holding its pictures. Frames arrive as packed RGB.

/** Side of the grey thumbnail that describes a frame's layout (8×8 = 64 values). */
export const THUMB_SIDE = 8;
/** Levels per colour channel in the coarse colour histogram (4³ = 64 bins). */
export const COLOUR_LEVELS = 4;

export interface FrameStats {
  /** Mean brightness, 0..255. */
  luma: number;
  /** 5th and 95th percentiles of brightness, 0..255. */
  p05: number;
  p95: number;
  /** Variance of the 4-neighbour Laplacian of the grey frame: low when blurred. */
  laplacianVar: number;
  /** 8×8 block means of the grey frame, 0..255. */
  thumb: Float32Array;
  /** Share of pixels in each of the 64 colour bins (sums to 1). */
  colour: Float32Array;
  /** The grey frame itself, to compare with the next sample (dropped by the caller after). */
  grey: Uint8Array;
}

/** Converts packed RGB to grey with the BT.601 weights video uses for luma. */
export function toGrey(rgb: Uint8Array, pixels: number): Uint8Array {
  const grey = new Uint8Array(pixels);
  for (let i = 0, p = 0; i < pixels; i++, p += 3) grey[i] = Math.round(0.299 * rgb[p] + 0.587 * rgb[p + 1] + 0.114 * rgb[p + 2]);
  return grey;
}

/** Variance of the 4-neighbour Laplacian over the frame's inner pixels. */
export function laplacianVariance(grey: Uint8Array, width: number, height: number): number {
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      const l = grey[i - 1] + grey[i + 1] + grey[i - width] + grey[i + width] - 4 * grey[i];
      sum += l;
      sumSq += l * l;
      n++;
    }
  }
  if (!n) return 0;
  const m = sum / n;
  return sumSq / n - m * m;
}

function percentile(histogram: Uint32Array, total: number, q: number): number {
  const target = q * total;
  let seen = 0;
  for (let v = 0; v < histogram.length; v++) {
    seen += histogram[v];
    if (seen >= target) return v;
  }
  return histogram.length - 1;
}

/** Block means of the grey frame on a side×side grid. */
function thumbnail(grey: Uint8Array, width: number, height: number, side = THUMB_SIDE): Float32Array {
  const sums = new Float64Array(side * side);
  const counts = new Uint32Array(side * side);
  for (let y = 0; y < height; y++) {
    const row = Math.min(side - 1, Math.floor((y * side) / height)) * side;
    for (let x = 0; x < width; x++) {
      const cell = row + Math.min(side - 1, Math.floor((x * side) / width));
      sums[cell] += grey[y * width + x];
      counts[cell]++;
    }
  }
  return Float32Array.from(sums, (s, i) => (counts[i] ? s / counts[i] : 0));
}

function colourHistogram(rgb: Uint8Array, pixels: number): Float32Array {
  const bins = new Float32Array(COLOUR_LEVELS ** 3);
  const step = 256 / COLOUR_LEVELS;
  for (let p = 0; p < pixels * 3; p += 3) {
    bins[(Math.floor(rgb[p] / step) * COLOUR_LEVELS + Math.floor(rgb[p + 1] / step)) * COLOUR_LEVELS + Math.floor(rgb[p + 2] / step)]++;
  }
  for (let i = 0; i < bins.length; i++) bins[i] /= Math.max(1, pixels);
  return bins;
}

/** Everything the visual metrics need from one frame. */
export function measureFrame(rgb: Uint8Array, width: number, height: number): FrameStats {
  const pixels = width * height;
  const grey = toGrey(rgb, pixels);
  const histogram = new Uint32Array(256);
  let sum = 0;
  for (let i = 0; i < pixels; i++) {
    histogram[grey[i]]++;
    sum += grey[i];
  }
  return {
    luma: pixels ? sum / pixels : 0,
    p05: percentile(histogram, pixels, 0.05),
    p95: percentile(histogram, pixels, 0.95),
    laplacianVar: laplacianVariance(grey, width, height),
    thumb: thumbnail(grey, width, height),
    colour: colourHistogram(rgb, pixels),
    grey,
  };
}

/** Mean absolute difference of two grey frames of the same size, in grey levels (null if sizes differ). */
export function meanAbsDiff(a: Uint8Array, b: Uint8Array): number | null {
  if (a.length !== b.length || !a.length) return null;
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

/** The sampled frames of one episode's video (one camera), folded into numbers as they arrive. */
export interface CameraSamples {
  episode: number;
  camera: string;
  /** Episode frame index of each sample received, ascending; the arrays below follow it. */
  frames: number[];
  luma: number[];
  p05: number[];
  p95: number[];
  laplacianVar: number[];
  /** Grey difference between consecutive samples (frame indices `from` → `to`). */
  diffs: { from: number; to: number; diff: number }[];
  /** Sums of the thumbnails and colour histograms, for the episode's descriptor. */
  thumbSum: Float64Array;
  colourSum: Float64Array;
}
