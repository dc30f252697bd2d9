import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { env } from "../env";
import { mediaTools, type MediaTools } from "../media/ffmpeg";
import type { EvalDataset, EvalEpisode, Finding, MetricOutput } from "./evaluation.schemas";
import { BLUR_LAPLACIAN_VAR, BRIGHT_LUMA, DARK_LUMA } from "./fidelity";
import { sampleEpisodeFrames, scoreVision, type SampledFrame } from "./vision";

// The visual metrics on videos ffmpeg makes here from its test patterns: a clean set raises
// nothing, each kind of bad camera raises its flag on its own episode and lowers its sub-score,
// episodes kept end to end in one MP4 are read from their own span, and the real SO-101
// recording kept in the repository (which has no videos) is judged without them.

const run = promisify(execFile);
const FPS = 30;
const LENGTH = 60; // frames per episode: 2 s
let tmp: string;
let tools: MediaTools;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-vision-"));
  tools = mediaTools(env());
});
afterAll(() => fs.rm(tmp, { recursive: true, force: true }));

/** Encodes `frames` frames of a lavfi source (320×240, 30 fps) through an optional filter. */
async function video(name: string, source: string, { filter, frames = LENGTH }: { filter?: string; frames?: number } = {}): Promise<string> {
  const file = path.join(tmp, `${name}.mp4`);
  const input = source.includes("=") ? source : `${source}=size=320x240:rate=${FPS}`;
  await run(tools.ffmpeg, ["-v", "error", "-y", "-f", "lavfi", "-i", input, ...(filter ? ["-vf", filter] : []), "-frames:v", String(frames), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", file]);
  return file;
}

/** An episode whose two joints sweep with their own phase and pace, so no two episodes move alike. */
function episode(index: number, videos: EvalEpisode["videos"], { length = LENGTH, task = "pick the cube" } = {}): EvalEpisode {
  const state = Array.from({ length }, (_, f) => [40 * Math.sin((f / length) * Math.PI * (1 + index * 0.37) + index), 30 * Math.cos((f / length) * Math.PI * (1.5 + index * 0.21) + 2 * index)]);
  return { index, task, timestamps: Array.from({ length }, (_, f) => f / FPS), state, action: state.map(([a, b]) => [a + 1, b - 1]), videos, extras: {} };
}

const dataset = (cameras: string[], episodes: EvalEpisode[]): EvalDataset => ({ fps: FPS, robotType: "so101_follower", names: { action: ["pan", "lift"], state: ["pan", "lift"] }, cameras, episodes });
const flagsOf = (out: MetricOutput, index: number): Finding[] => out.findings.get(index) ?? [];
const subScore = (out: MetricOutput, key: string) => {
  const found = out.result.subScores.find((s) => s.key === key);
  if (!found) throw new Error(`no sub-score ${key} in ${out.result.code}`);
  return found;
};
const VISUAL_FLAGS = ["blurred-camera", "dark-camera", "overexposed-camera", "frozen-camera", "black-camera", "missing-video", "duplicate"];

// Clean pictures that move: each episode its own pattern (or hue of it) on each camera.
const FRONT = ["testsrc", "testsrc2", "mandelbrot", "testsrc2,hue=h=120", "testsrc,hue=h=200", "mandelbrot,hue=h=90"];
const WRIST = ["testsrc2,hue=h=240", "mandelbrot,hue=h=200", "testsrc,hue=h=60", "testsrc2,hue=h=300", "mandelbrot,hue=h=300", "testsrc"];
const withSize = (source: string) => {
  const [pattern, ...filters] = source.split(",");
  return [`${pattern}=size=320x240:rate=${FPS}`, ...filters].join(",");
};

describe("high-fidelity vision and visual diversity", { timeout: 120_000 }, () => {
  let clean: Awaited<ReturnType<typeof scoreVision>>;
  let cleanFiles: { front: string; wrist: string }[];

  it("raises nothing on a clean set, and maps every episode", async () => {
    cleanFiles = await Promise.all(FRONT.map(async (front, i) => ({ front: await video(`clean-front-${i}`, withSize(front)), wrist: await video(`clean-wrist-${i}`, withSize(WRIST[i])) })));
    const ds = dataset(["front", "wrist"], cleanFiles.map((f, i) => episode(i, { front: { file: f.front, from: 0 }, wrist: { file: f.wrist, from: 0 } })));
    const progress: [number, number][] = [];
    clean = await scoreVision(ds, { tools, framesPerEpisode: 6, onProgress: (done, total) => progress.push([done, total]) });
    for (const out of [clean.h, clean.v]) for (const [index, list] of out.findings) expect(list.filter((f) => VISUAL_FLAGS.includes(f.flag)), `episode ${index}`).toEqual([]);
    expect(progress.at(-1)).toEqual([12, 12]);
    for (const key of ["cameras", "wrist", "videos", "resolution", "fps", "sharpness", "exposure", "live", "black"]) expect(subScore(clean.h, key).score, key).not.toBeNull();
    expect(subScore(clean.h, "resolution").score).toBeCloseTo(0.5, 2); // 320×240
    for (const key of ["sharpness", "exposure", "live", "black", "videos", "fps"]) expect(subScore(clean.h, key).score, key).toBe(1);
    expect(subScore(clean.v, "distinct").score).toBe(1);
    expect(clean.visualMap.map((p) => p.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(new Set(clean.visualMap.map((p) => `${p.x},${p.y}`)).size).toBe(6);
    expect(clean.descriptor).toMatch(/8×8 grey thumbnail/);
  });

  it("reads again only the episode videos it shows or that changed: the others' samples come from the earlier scoring, with the same scores", async () => {
    const cacheDir = path.join(tmp, "episode-cache");
    const ds = () => dataset(["front", "wrist"], cleanFiles.map((f, i) => episode(i, { front: { file: f.front, from: 0 }, wrist: { file: f.wrist, from: 0 } })));
    const first = await scoreVision(ds(), { tools, framesPerEpisode: 6, cacheDir });
    expect(first.reused).toBe(0);
    // The report shows frames of episodes 0, 2, 3 and 5 of each camera, so those are decoded again; 1 and 4 are not.
    const progress: [number, number][] = [];
    const second = await scoreVision(ds(), { tools, framesPerEpisode: 6, cacheDir, onProgress: (done, total) => progress.push([done, total]) });
    expect(second.reused).toBe(4);
    expect(progress[0]).toEqual([4, 12]);
    expect(progress.at(-1)).toEqual([12, 12]);
    for (const key of ["h", "v"] as const) {
      expect(second[key].result).toEqual(first[key].result);
      expect([...second[key].findings]).toEqual([...first[key].findings]);
    }
    expect(second.visualMap).toEqual(first.visualMap);
    expect(second.sampleFrames).toEqual(first.sampleFrames);
    // Scores without the cache are the same too.
    expect(first.h.result).toEqual(clean.h.result);
    expect(first.v.result).toEqual(clean.v.result);
    // Episode 1's front video written again (a new file in its place) is read again.
    const copy = `${cleanFiles[1].front}.new`;
    await fs.copyFile(cleanFiles[1].front, copy);
    await fs.rename(copy, cleanFiles[1].front);
    const entries = (await fs.readdir(cacheDir, { recursive: true })).filter((f) => f.endsWith(".json"));
    expect(entries.length).toBe(12);
    const third = await scoreVision(ds(), { tools, framesPerEpisode: 6, cacheDir });
    expect(third.reused).toBe(3);
    expect(third.h.result).toEqual(first.h.result);
  });

  it("flags a blurred, a dark, an overexposed, a black and a frozen camera and a duplicated episode, each on its own episode, and lowers their sub-scores", async () => {
    const [blurred, dark, bright, black, frozen] = await Promise.all([
      video("blurred", withSize("testsrc2"), { filter: "gblur=sigma=8" }),
      video("dark", withSize("testsrc"), { filter: "lutrgb=r=val*0.2:g=val*0.2:b=val*0.2" }),
      video("bright", withSize("testsrc"), { filter: "lutrgb=r=255-(255-val)*0.25:g=255-(255-val)*0.25:b=255-(255-val)*0.25" }),
      video("black", `color=black:size=320x240:rate=${FPS}`),
      video("frozen", withSize("testsrc2"), { filter: "trim=end_frame=1,tpad=stop_mode=clone:stop=-1" }),
    ]);
    const files = cleanFiles.map((f) => ({ ...f }));
    files[1].front = blurred;
    files[2].wrist = black;
    files[3].front = dark;
    files[4].wrist = frozen;
    files[5].wrist = bright;
    const episodes = files.map((f, i) => episode(i, { front: { file: f.front, from: 0 }, wrist: { file: f.wrist, from: 0 } }));
    // Episode 6 is episode 0 again: the same videos and the same motion.
    episodes.push({ ...episode(0, episodes[0].videos), index: 6 });
    const out = await scoreVision(dataset(["front", "wrist"], episodes), { tools, framesPerEpisode: 6 });

    const raised = (index: number) => [...flagsOf(out.h, index), ...flagsOf(out.v, index)].map((f) => `${f.flag} ${f.detail.split(":")[0]}`);
    expect(raised(0)).toEqual(["duplicate the same motion and picture as episode 6"]);
    expect(raised(1)).toEqual(["blurred-camera camera front"]);
    expect(raised(2)).toEqual(["black-camera camera wrist"]);
    expect(raised(3)).toEqual(["dark-camera camera front"]);
    expect(raised(4)).toEqual(["frozen-camera camera wrist"]);
    expect(raised(5)).toEqual(["overexposed-camera camera wrist"]);
    expect(raised(6)).toEqual(["duplicate the same motion and picture as episode 0"]);
    expect(flagsOf(out.h, 1)[0].values.laplacianVar).toBeLessThan(BLUR_LAPLACIAN_VAR);
    expect(flagsOf(out.h, 3)[0].values.meanLuma).toBeLessThan(DARK_LUMA);
    expect(flagsOf(out.h, 5)[0].values.meanLuma).toBeGreaterThan(BRIGHT_LUMA);
    expect(flagsOf(out.v, 6)[0].values.other).toBe(0);

    for (const key of ["sharpness", "exposure", "live", "black"]) expect(subScore(out.h, key).score!, key).toBeLessThan(subScore(clean.h, key).score!);
    expect(subScore(out.v, "distinct").score!).toBeLessThan(subScore(clean.v, "distinct").score!);
    expect(subScore(out.v, "distinct").value).toBe(2);
  });

  it("does not call a still picture frozen while the arm is still too", async () => {
    const frozen = path.join(tmp, "frozen.mp4"); // made by the test above
    const still = episode(1, { front: { file: frozen, from: 0 } });
    still.state = still.state.map(() => [5, 5]);
    const moving = episode(0, { front: { file: frozen, from: 0 } });
    const out = await scoreVision(dataset(["front"], [moving, still]), { tools, framesPerEpisode: 6 });
    expect(flagsOf(out.h, 0).map((f) => f.flag)).toContain("frozen-camera");
    expect(flagsOf(out.h, 1).map((f) => f.flag)).not.toContain("frozen-camera");
    expect(subScore(out.h, "live")).toMatchObject({ score: 0, value: 5 }); // the moving episode's five steps, none of the still one's
  });

  it("scores little visual spread when every episode shows the same picture, though the arm moves differently in each", async () => {
    const same = cleanFiles[0];
    const out = await scoreVision(dataset(["front", "wrist"], cleanFiles.map((_, i) => episode(i, { front: { file: same.front, from: 0 }, wrist: { file: same.wrist, from: 0 } }))), { tools, framesPerEpisode: 6 });
    expect(subScore(out.v, "visual-spread").value!).toBeLessThan(0.01);
    expect(subScore(out.v, "visual-spread").score!).toBeLessThan(subScore(clean.v, "visual-spread").score! / 10);
    expect(out.v.result.score!).toBeLessThan(clean.v.result.score!);
    expect(subScore(out.v, "distinct").score).toBe(1); // the motions differ: not duplicates
  });
});

describe("sampling episode videos", { timeout: 60_000 }, () => {
  it("reads each episode from its own span of a shared MP4, and says which episode videos cannot be read", async () => {
    // Red, green and blue seconds end to end; the dataset lists them in another order.
    const shared = path.join(tmp, "shared.mp4");
    const colours = ["red", "green", "blue"].map((c) => ["-f", "lavfi", "-i", `color=${c}:size=96x64:rate=${FPS}:duration=1`]).flat();
    await run(tools.ffmpeg, ["-v", "error", "-y", ...colours, "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", shared]);
    const from = { 0: 2, 1: 0, 2: 1, 3: 5 } as Record<number, number>; // episode → second in the file (3 is past its end)
    const ds = dataset(["top"], [0, 1, 2, 3].map((i) => episode(i, { top: { file: shared, from: from[i] } }, { length: FPS })));
    const notVideo = path.join(tmp, "not-a-video.mp4");
    await fs.writeFile(notVideo, "these are not frames");
    ds.episodes.push(episode(4, { top: { file: notVideo, from: 0 } }, { length: FPS }));
    const frames: SampledFrame[] = [];
    const progress: number[] = [];
    const result = await sampleEpisodeFrames(ds, { tools, framesPerEpisode: 5, onFrame: (f) => frames.push(f), onProgress: (done) => progress.push(done) });
    const dominant = (f: SampledFrame) => {
      const sums = [0, 0, 0];
      for (let p = 0; p < f.rgb.length; p += 3) for (let c = 0; c < 3; c++) sums[c] += f.rgb[p + c];
      return ["red", "green", "blue"][sums.indexOf(Math.max(...sums))];
    };
    const seen = (episode: number) => frames.filter((f) => f.episode === episode).map(dominant);
    expect(seen(0)).toEqual(Array(5).fill("blue"));
    expect(seen(1)).toEqual(Array(5).fill("red"));
    expect(seen(2)).toEqual(Array(5).fill("green"));
    expect(seen(3)).toEqual([]);
    expect(frames.filter((f) => f.episode === 0).map((f) => f.frame)).toEqual([3, 9, 15, 21, 27]);
    expect(frames[0]).toMatchObject({ width: 96, height: 64 });
    expect(result.problems).toEqual([
      { episode: 3, camera: "top", reason: expect.stringMatching(/video ends before the episode/) },
      { episode: 4, camera: "top", reason: expect.stringMatching(/^not-a-video\.mp4 is not a readable video/) },
    ]);
    expect(result.probes.get(shared)).toMatchObject({ width: 96, height: 64, fps: FPS });
    expect(progress.at(-1)).toBe(5);
  });

  it("stops when cancelled, or when the caller fails on a frame", async () => {
    const file = await video("cancel", withSize("testsrc"));
    const ds = dataset(["top"], [episode(0, { top: { file, from: 0 } })]);
    const controller = new AbortController();
    const reason = new Error("cancelled by the test");
    await expect(sampleEpisodeFrames(ds, { tools, framesPerEpisode: 6, signal: controller.signal, onFrame: () => controller.abort(reason) })).rejects.toBe(reason);
    const failure = new Error("the caller failed");
    await expect(sampleEpisodeFrames(ds, { tools, framesPerEpisode: 6, onFrame: () => { throw failure; } })).rejects.toBe(failure);
  });
});

describe("a recording without videos", () => {
  it("says the SO-101 fixture's videos are missing, measures nothing it cannot see, and still scores what it can", async () => {
    const root = path.resolve("tests/fixtures/so101-record-v3");
    const rows = (await parquetReadObjects({ file: await asyncBufferFromFile(path.join(root, "data/chunk-000/file-000.parquet")) })) as Record<string, unknown>[];
    const byEpisode = new Map<number, Record<string, unknown>[]>();
    for (const r of rows) byEpisode.set(Number(r.episode_index), [...(byEpisode.get(Number(r.episode_index)) ?? []), r]);
    const cameras = ["front", "top"];
    const ds: EvalDataset = {
      fps: 30,
      robotType: "so101_follower",
      names: { action: [], state: [] },
      cameras,
      episodes: [...byEpisode].map(([index, list]) => ({
        index,
        task: "task",
        timestamps: list.map((r) => Number(r.timestamp)),
        state: list.map((r) => (r["observation.state"] as number[]).map(Number)),
        action: list.map((r) => (r.action as number[]).map(Number)),
        videos: { front: null, top: null },
        extras: {},
      })),
    };
    expect(ds.episodes).toHaveLength(4);
    const out = await scoreVision(ds, { tools, framesPerEpisode: 4 });
    for (const e of ds.episodes) expect(flagsOf(out.h, e.index).map((f) => `${f.flag} ${f.detail.split(":")[0]}`)).toEqual(["missing-video camera front", "missing-video camera top"]);
    for (const key of ["resolution", "fps", "sharpness", "exposure", "live", "black"]) expect(subScore(out.h, key).score, key).toBeNull();
    expect(subScore(out.h, "videos")).toMatchObject({ score: 0, value: 0 });
    expect(subScore(out.h, "cameras").score).toBe(1);
    expect(out.h.result.notes.join(" ")).toMatch(/No camera video could be read/);
    for (const key of ["visual-spread", "visual-clusters", "cluster-balance"]) expect(subScore(out.v, key).score, key).toBeNull();
    expect(subScore(out.v, "state-variety").score).not.toBeNull();
    expect(out.v.result.notes.join(" ")).toMatch(/No video frames were sampled/);
    expect(out.visualMap).toEqual([]);
  });
});
