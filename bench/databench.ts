// Dataset scoring against its floor, side by side in one run:
//   floor:  reading the same parquet columns with hyparquet, plus decoding the same sampled frames
//           with the ffmpeg CLI (one ffmpeg per episode video, a select filter for the frames);
//   ours:   a full evaluation of all six metrics (loadEvalDataset, the numeric metrics, frame
//           sampling and the visual metrics), in this process, with its peak memory (RSS);
//   again:  the same dataset scored a second time, unchanged, through the evaluation service
//           (a database of its own): the first scoring of the build against the second;
//   rebuilt: the same episodes as a new build (as after a change that leaves their videos
//           alone): the build's report cannot be reused, each episode video's samples can.
// The dataset: 50 episodes × 400 frames at 30 fps (20,000 frames), one camera, LeRobot v3.0
// as found on the hub (one MP4 per episode), generated here with ffmpeg. Runs from a clean
// checkout (`npx tsx bench/databench.ts`) and exits when done.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";

const run = promisify(execFile);
const EPISODES = Number(process.env.BENCH_EPISODES ?? 50);
const FRAMES = Number(process.env.BENCH_FRAMES ?? 400);
const FPS = 30;
const FRAMES_PER_EPISODE = 6;
const log = (m: string) => console.error(`[databench] ${m}`);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-databench-"));
process.env.DATASETS_DIR = path.join(tmp, "datasets");
// Secrets and the evaluation cache of an instance of its own, gone with the run.
process.env.GANTRY_HOME = path.join(tmp, "home");
const { createTestDatabase } = await import("../tests/setup/test-database");
const database = await createTestDatabase("bench_databench");
process.env.DATABASE_URL = database.url;
const { writeV3Dataset } = await import("../tests/helpers/lerobot-datasets");
const { env } = await import("../server/env");
const { createDb } = await import("../server/db");
const { datasetDir } = await import("../server/datasets/datasets.schemas");
const { startEvaluation, runEvaluation } = await import("../server/evaluation/evaluation.service");
const { silentProgress } = await import("../server/jobs/progress");
const { blobStore } = await import("../server/storage/blobs");
const { createOrgWithMember } = await import("../tests/helpers/factories");
const { loadEvalDataset } = await import("../server/evaluation/load");
const { decideUnits } = await import("../server/evaluation/units");
const { scoreTrajectory } = await import("../server/evaluation/trajectory");
const { scoreRobot } = await import("../server/evaluation/robot");
const { scoreConsistency } = await import("../server/evaluation/consistency");
const { scoreCoverage } = await import("../server/evaluation/coverage");
const { scoreVision } = await import("../server/evaluation/vision");
const { mediaTools } = await import("../server/media/ffmpeg");
const { compare, printResults } = await import("./lib/stats");

const dir = path.join(tmp, "dataset");
const db = createDb(database.url, 4);
try {
  log(`writing a ${EPISODES}-episode, ${EPISODES * FRAMES}-frame dataset with one camera`);
  await writeV3Dataset(dir, { episodes: EPISODES, frames: FRAMES, fps: FPS, videoKeys: ["observation.images.front"] });

  // The floor: the same columns, and the same frames decoded.
  const floor = async () => {
    const t0 = performance.now();
    const rows = (await parquetReadObjects({ file: await asyncBufferFromFile(path.join(dir, "data/chunk-000/file-000.parquet")), columns: ["action", "observation.state", "timestamp", "episode_index", "frame_index"] })) as unknown[];
    if (rows.length !== EPISODES * FRAMES) throw new Error(`the floor read ${rows.length} rows`);
    const picks = Array.from({ length: FRAMES_PER_EPISODE }, (_, i) => Math.floor(((i + 0.5) * FRAMES) / FRAMES_PER_EPISODE));
    const select = picks.map((n) => `eq(n\\,${n})`).join("+");
    for (let e = 0; e < EPISODES; e++) {
      const file = path.join(dir, `videos/observation.images.front/chunk-000/file-${String(e).padStart(3, "0")}.mp4`);
      const { stdout } = await run("ffmpeg", ["-nostdin", "-v", "error", "-i", file, "-vf", `select='${select}',scale=64:48`, "-vsync", "0", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"], { encoding: "buffer", maxBuffer: 1 << 24 });
      if (stdout.length !== 64 * 48 * FRAMES_PER_EPISODE) throw new Error(`the floor decoded ${stdout.length} bytes of episode ${e}`);
    }
    return (performance.now() - t0) / 1000;
  };

  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const ours = async () => {
    const t0 = performance.now();
    const { dataset } = await loadEvalDataset(dir);
    const units = decideUnits(dataset);
    const scores = [scoreTrajectory(dataset), scoreRobot(dataset, units).output, scoreConsistency(dataset), scoreCoverage(dataset)];
    const vision = await scoreVision(dataset, { tools: mediaTools({}), framesPerEpisode: FRAMES_PER_EPISODE });
    scores.push(vision.h, vision.v);
    if (scores.some((s) => !s.result)) throw new Error("a metric gave no result");
    return (performance.now() - t0) / 1000;
  };

  const floorS: number[] = [];
  const oursS: number[] = [];
  for (let i = 0; i < 3; i++) {
    floorS.push(await floor());
    oursS.push(await ours());
    log(`run ${i + 1}: floor ${floorS[i].toFixed(2)} s, ours ${oursS[i].toFixed(2)} s, peak RSS ${(peak / 1024 ** 2).toFixed(0)} MB`);
  }
  clearInterval(sampler);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

  // Through the service: the dataset as Gantry holds it (its folder is the build), scored twice.
  const { actor } = await createOrgWithMember(db, "operator");
  const repoId = "bench/databench";
  const dataset = await db.dataset.create({ data: { orgId: actor.orgId, repoId, buildId: "bench-build", fps: FPS, robotType: "so101_follower" } });
  const link = datasetDir(env(), actor.orgId, repoId);
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.symlinkSync(dir, link);
  const scoreOnce = async () => {
    const { evaluationId } = await startEvaluation(db, { actor, input: { datasetId: dataset.id, framesPerEpisode: FRAMES_PER_EPISODE } });
    const t0 = performance.now();
    await runEvaluation(db, { evaluationId, settings: env(), blobs: blobStore(), progress: silentProgress, signal: new AbortController().signal });
    return (performance.now() - t0) / 1000;
  };
  const first = await scoreOnce();
  const again = await scoreOnce();
  await db.dataset.update({ where: { id: dataset.id }, data: { buildId: "bench-build-2" } });
  const rebuilt = await scoreOnce();
  log(`through the service: first scoring ${first.toFixed(2)} s, the unchanged build again ${again.toFixed(3)} s, a new build of the same episode videos ${rebuilt.toFixed(2)} s`);
  printResults("databench", [
    compare(`full evaluation (6 metrics) of ${EPISODES} episodes × ${FRAMES} frames, 1 camera, vs the floor (hyparquet columns + ffmpeg CLI decoding the same ${FRAMES_PER_EPISODE} frames per episode), median of 3`, median(oursS), median(floorS), "s", "≤ 1.5× the floor"),
    compare("full evaluation wall time on this machine (reference: the bound)", median(oursS), 60, "s", "≤ 60 s"),
    compare("peak memory (RSS) of the evaluating process (reference: the bound)", peak / 1024 ** 2, 1024, "MB", "≤ 1 GB"),
    compare("re-scoring the unchanged build vs its first scoring, through the evaluation service (the build's report is reused)", again, first, "s", "≤ 0.1× the first run"),
    compare("scoring a new build of the same episode videos vs the first scoring (each video's samples reused, but those whose frames the report shows)", rebuilt, first, "s", "context: per-episode reuse"),
  ]);
} finally {
  await db.$disconnect().catch(() => {});
  await database.drop().catch((e: Error) => log(`dropping the database: ${e.message}`));
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(0);
