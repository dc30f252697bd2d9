import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

// `npx tsx bench/encode.ts` — the encoding job's camera step against the ffmpeg CLI, on the same
// PNG frames with the same settings (libx264, EDGE_ENCODE_PRESET, EDGE_ENCODE_CRF, yuv420p):
//   throughput: one camera, BENCH_FRAMES frames of BENCH_SIZE — ours (frame check, encode, check of
//               the MP4 written) vs `ffmpeg -framerate 30 -i frame-%d.png …` — frames/s, best of BENCH_RUNS;
//   parallel:   two cameras encoded by the job at once, judged against the CPU time two sequential
//               ffmpeg runs used (the whole machine's busy time, /proc/stat) spread over every
//               core — no parallel run can take less; the sequential wall time as context.
// Frames come from ffmpeg's testsrc2 (moving colour bars and noise-free gradients).

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-bench-encode-"));
process.env.GANTRY_HOME ??= path.join(tmp, "home");

const { env } = await import("../server/env");
const { mediaTools, codecOptions } = await import("../server/media/ffmpeg");
const { encodeCamera, encodeCameras, encodeSettingsFrom } = await import("../server/datasets/encode.service");
const { busyCpuSeconds, compare, printResults } = await import("./lib/stats");

const run = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const FRAMES = Number(process.env.BENCH_FRAMES ?? 450);
const SIZE = process.env.BENCH_SIZE ?? "640x480";
const FPS = 30;

const settings = env();
const tools = mediaTools(settings);
const encode = encodeSettingsFrom({ ...settings, EDGE_ENCODE_CODEC: "h264" });
const { options } = await codecOptions(tools, encode);

async function makeFrames(camera: string, hue: number): Promise<string[]> {
  const dir = path.join(tmp, "frames", camera);
  fs.mkdirSync(dir, { recursive: true });
  await run(tools.ffmpeg, ["-v", "error", "-f", "lavfi", "-i", `testsrc2=size=${SIZE}:rate=${FPS}`, "-frames:v", String(FRAMES), "-vf", `hue=h=${hue}`, "-start_number", "0", path.join(dir, "frame-%d.png")]);
  return Array.from({ length: FRAMES }, (_, i) => path.join(dir, `frame-${i}.png`));
}

const timed = async (fn: () => Promise<unknown>) => {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
};
const cli = (camera: string, out: string) =>
  run(tools.ffmpeg, ["-v", "error", "-y", "-framerate", String(FPS), "-start_number", "0", "-i", path.join(tmp, "frames", camera, "frame-%d.png"), ...options, "-r", String(FPS), "-an", "-movflags", "+faststart", out]);

try {
  const front = await makeFrames("front", 0);
  const wrist = await makeFrames("wrist", 120);
  const out = path.join(tmp, "out");
  fs.mkdirSync(out);
  await cli("front", path.join(out, "warm.mp4")); // page cache and ffmpeg's first start

  // Alternating ours and the CLI, each tool's best run.
  let oursOne = Infinity;
  let cliOne = Infinity;
  let oursTwo = Infinity;
  let cliTwo = Infinity;
  let cliTwoCpu = NaN;
  for (let i = 0; i < RUNS; i++) {
    oursOne = Math.min(oursOne, await timed(() => encodeCamera({ tools, camera: "front", frames: front, fps: FPS, output: path.join(out, `ours-${i}.mp4`), settings: encode })));
    cliOne = Math.min(cliOne, await timed(() => cli("front", path.join(out, `cli-${i}.mp4`))));
    oursTwo = Math.min(oursTwo, await timed(() => encodeCameras({ tools, cameras: [{ camera: "front", frames: front }, { camera: "wrist", frames: wrist }], fps: FPS, dir: fs.mkdtempSync(path.join(out, "pair-")), settings: encode })));
    const cpuBefore = busyCpuSeconds();
    const sequential = await timed(async () => {
      await cli("front", path.join(out, `cli-front-${i}.mp4`));
      await cli("wrist", path.join(out, `cli-wrist-${i}.mp4`));
    });
    const cpu = busyCpuSeconds() - cpuBefore;
    if (sequential < cliTwo) {
      cliTwo = sequential;
      cliTwoCpu = cpu;
    }
  }
  printResults("encode", [
    compare(`one camera, ${FRAMES} frames ${SIZE}, libx264 ${encode.preset} crf ${encode.crf}`, FRAMES / oursOne, FRAMES / cliOne, "frames/s", "≥ 0.95×"),
    // The two encodes need as much CPU time in parallel as one after the other: spread over
    // every core with nothing else running, they still take that CPU time ÷ cores — the floor
    // a parallel run is judged against.
    compare(`two cameras in parallel vs their CPU floor: the sequential runs' CPU time ÷ ${os.availableParallelism()} cores`, oursTwo, cliTwoCpu / os.availableParallelism(), "s", "≤ 1.05×"),
    compare(`two cameras in parallel vs two sequential ffmpeg runs (${os.availableParallelism()} cores)`, oursTwo, cliTwo, "s", "context: wall time against one after the other"),
  ]);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
