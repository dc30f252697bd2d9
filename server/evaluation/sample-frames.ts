import type { MediaTools } from "../media/ffmpeg";
import { killOwned, spawnOwned } from "../process/owned-child";
import { SAMPLE_FRAME_MAX_BYTES, SAMPLE_FRAMES_MAX, type EvalDataset, type SampleFrame } from "./evaluation.schemas";
import { BLUR_LAPLACIAN_VAR, BRIGHT_LUMA, DARK_LUMA, SHARP_LAPLACIAN_VAR } from "./fidelity";
import type { SampledFrame } from "./vision";

// The report shows a few of the frames the h metric judged, per camera, so a person can see
// what "blurred" or "dark" meant on this dataset. They are the frames already decoded for the
// metrics (at most 160 px), kept as small JPEGs in the report itself: a report is read whole by
// whoever may read the evaluation, so the pictures are under the same access with no store of
// their own, and the size bounds keep a report of any dataset small.

/** Frames kept per camera: episodes spread over the dataset, one frame (the middle sample) of each. */
const FRAMES_PER_CAMERA = 4;
/** JPEG quality scale of ffmpeg's mjpeg encoder (2 best … 31 worst): tried in turn until the frame fits SAMPLE_FRAME_MAX_BYTES. */
const JPEG_QUALITIES = [5, 10, 20, 31];

interface Kept {
  camera: string;
  episode: number;
  frame: number;
  width: number;
  height: number;
  rgb: Uint8Array;
  laplacianVar: number;
  luma: number;
}

/**
 * Picks which sampled frames to keep before any is decoded: per camera, up to FRAMES_PER_CAMERA
 * episodes evenly spread over those with a video of it (fewer per camera when there are many
 * cameras, SAMPLE_FRAMES_MAX in all), and of each the middle sample.
 */
export function frameKeeper(ds: EvalDataset) {
  const perCamera = Math.max(1, Math.min(FRAMES_PER_CAMERA, Math.floor(SAMPLE_FRAMES_MAX / Math.max(1, ds.cameras.length))));
  const wanted = new Set<string>();
  for (const camera of ds.cameras.slice(0, SAMPLE_FRAMES_MAX)) {
    const withVideo = ds.episodes.filter((e) => e.videos[camera]);
    const n = Math.min(perCamera, withVideo.length);
    for (let i = 0; i < n; i++) wanted.add(`${withVideo[Math.floor(((i + 0.5) * withVideo.length) / n)].index}\u0000${camera}`);
  }
  const kept: Kept[] = [];
  return {
    /** Whether a frame of this episode's video of this camera is to be shown. */
    wants: (episode: number, camera: string): boolean => wanted.has(`${episode}\u0000${camera}`),
    /** Keeps the frame when it is one of those picked; `stats` are the numbers the metric read off it. */
    offer(f: SampledFrame, stats: { laplacianVar: number; luma: number }): void {
      if (f.sample !== Math.floor(f.of / 2) || !wanted.has(`${f.episode}\u0000${f.camera}`)) return;
      kept.push({ camera: f.camera, episode: f.episode, frame: f.frame, width: f.width, height: f.height, rgb: f.rgb.slice(), laplacianVar: stats.laplacianVar, luma: stats.luma });
    },
    /** The kept frames as JPEG data URLs, by camera then episode (a frame no quality fits is left out). */
    async encode(tools: MediaTools, signal?: AbortSignal): Promise<SampleFrame[]> {
      const order = new Map(ds.cameras.map((c, i) => [c, i]));
      kept.sort((a, b) => order.get(a.camera)! - order.get(b.camera)! || a.episode - b.episode);
      // Two encoders at once: each is a short ffmpeg whose start-up is most of its time.
      const jpegs: (Buffer | null)[] = new Array(kept.length).fill(null);
      let next = 0;
      const encoder = async () => {
        for (let i = next++; i < kept.length; i = next++) jpegs[i] = await encodeBoundedJpeg(tools, kept[i].rgb, kept[i].width, kept[i].height, signal);
      };
      await Promise.all([encoder(), encoder()]);
      const out: SampleFrame[] = [];
      for (const [i, k] of kept.entries()) {
        const jpeg = jpegs[i];
        if (!jpeg) continue;
        out.push({ camera: k.camera, episode: k.episode, frame: k.frame, width: k.width, height: k.height, laplacianVar: Number(k.laplacianVar.toFixed(1)), luma: Number(k.luma.toFixed(1)), dataUrl: `data:image/jpeg;base64,${jpeg.toString("base64")}` });
      }
      return out;
    },
  };
}

/** What the numbers under each frame mean, with the thresholds the h metric uses. */
export function describeSampleFrames(): string {
  return `Sharpness is the variance of the Laplacian of the frame in grey (decoded at most 160 px on the long side): edges make it large, blur makes it small — under ${BLUR_LAPLACIAN_VAR} a camera is flagged blurred, ${SHARP_LAPLACIAN_VAR} or more is fully sharp. Brightness is the mean grey level from 0 (black) to 255 (white): under ${DARK_LUMA} is too dark, over ${BRIGHT_LUMA} washed out.`;
}

async function encodeBoundedJpeg(tools: MediaTools, rgb: Uint8Array, width: number, height: number, signal?: AbortSignal): Promise<Buffer | null> {
  for (const q of JPEG_QUALITIES) {
    const jpeg = await encodeJpeg(tools, rgb, width, height, q, signal);
    if (jpeg && jpeg.length <= SAMPLE_FRAME_MAX_BYTES) return jpeg;
  }
  return null;
}

/** One packed-RGB frame to JPEG through ffmpeg's mjpeg encoder; null when the JPEG would exceed the bound. */
function encodeJpeg(tools: MediaTools, rgb: Uint8Array, width: number, height: number, quality: number, signal?: AbortSignal): Promise<Buffer | null> {
  const args = ["-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", `${width}x${height}`, "-i", "pipe:0", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", String(quality), "-pix_fmt", "yuvj420p", "-f", "image2pipe", "pipe:1"];
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error("Cancelled"));
    const child = spawnOwned(tools.ffmpeg, args, { stdio: ["pipe", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let bytes = 0;
    let isTooLarge = false;
    let stderr = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > SAMPLE_FRAME_MAX_BYTES) {
        isTooLarge = true;
        killOwned(child);
      } else chunks.push(chunk);
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-2000)));
    // ffmpeg may close its input early (killed for size): that is not an error here.
    child.stdin!.on("error", () => {});
    child.stdin!.end(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength));
    const abort = () => killOwned(child);
    signal?.addEventListener("abort", abort, { once: true });
    child.once("error", (error) => {
      signal?.removeEventListener("abort", abort);
      reject(error);
    });
    child.once("close", (code) => {
      signal?.removeEventListener("abort", abort);
      if (signal?.aborted) return reject(signal.reason ?? new Error("Cancelled"));
      if (isTooLarge) return resolve(null);
      if (code !== 0) return reject(new Error(`ffmpeg could not encode a sample frame as JPEG: ${stderr.trim().split("\n").at(-1) || `exit ${code}`}`));
      resolve(Buffer.concat(chunks));
    });
  });
}
