import type { EvalDataset, EvalEpisode, MetricOutput, SubScore } from "./evaluation.schemas";
import { THUMB_SIDE, type CameraSamples } from "./frame-stats";
import { Findings, mean, metricOutput, std, sub } from "./metric-output";
import { bestClustering, distance, MAX_CLUSTERS, pairwiseDistances, principalMap, type Vector } from "./vector-math";

// v — visual diversity: do the episodes show different scenes, move differently and cover
// different tasks, or is the dataset the same episode again and again? Visual descriptors are
// made from the sampled frames alone (no model to download): per camera the mean 8×8 grey
// thumbnail and the square-rooted coarse colour histogram (see frame-stats.ts).

/**
 * Mean pairwise descriptor distance that scores 1 on visual spread. A camera's part of the
 * distance is at most about 1 for the layout and 1 for the colours: 0.25 is two pictures whose
 * every 8×8 block differs by a quarter of the grey range, or whose colours overlap by about 94%
 * (Hellinger distance 0.25).
 */
const SPREAD_FULL = 0.25;
/** Descriptor distance under which two episodes look the same: every block within ~5 grey levels and colours alike, i.e. noise and compression. */
const DUPLICATE_DESCRIPTOR = 0.02;
/** RMS difference of two resampled trajectories, in each joint's standard deviation over the dataset, under which they are the same motion: hand-guided recordings never repeat this closely, copies do. */
const DUPLICATE_TRAJECTORY = 0.02;
/** Points each episode's trajectory is resampled to before comparing (enough for the shape of a reach-and-grasp). */
const TRAJECTORY_POINTS = 32;
/** Mean pairwise distance of per-episode joint mean/std vectors, per joint and in its overall standard deviation, that scores 1: episodes that sit or range half a deviation apart on every joint. */
const MOTION_SPREAD_FULL = 0.5;
/** Evenly used tasks for full marks on task variety (entropy over log 5): the multi-task sets this is compared with mix a handful. */
const TASKS_FULL = 5;

/** An organisation's image encoder's embeddings of the sampled frames, summed per episode video (key: episode NUL camera). */
export interface EmbeddingSums {
  sums: Map<string, { camera: string; sum: Float64Array; count: number }>;
}

/**
 * Per episode, each camera's part, cameras side by side and over √cameras. From the frames: the
 * mean thumbnail (over 255 × THUMB_SIDE: the distance of two is the typical block difference
 * over 255) and root colour histogram (over √2: the distance of two is their Hellinger distance,
 * 0..1). From an image encoder: the mean of the frames' unit embeddings over 2, so that two
 * pictures whose embeddings point opposite ways are 1 apart, as two that differ in every way are
 * on the frames' own descriptor.
 */
function episodeDescriptors(ds: EvalDataset, samples: CameraSamples[], embeddings?: EmbeddingSums): Map<number, Vector> {
  const parts = new Map<string, { camera: string; part: number[] }>();
  if (embeddings) {
    for (const [key, e] of embeddings.sums) if (e.count) parts.set(key, { camera: e.camera, part: Array.from(e.sum, (v) => v / e.count / 2) });
  } else {
    for (const s of samples) {
      if (!s.frames.length) continue;
      parts.set(`${s.episode}\u0000${s.camera}`, { camera: s.camera, part: [...Array.from(s.thumbSum, (v) => v / s.frames.length / 255 / THUMB_SIDE), ...Array.from(s.colourSum, (v) => Math.sqrt(v / s.frames.length) / Math.SQRT2)] });
    }
  }
  const cameras = ds.cameras.filter((c) => [...parts.values()].some((p) => p.camera === c));
  // A camera an episode lacks takes the camera's mean over the others, so it neither adds nor hides a difference.
  const fill = new Map(cameras.map((c) => {
    const of = [...parts.values()].filter((p) => p.camera === c).map((p) => p.part);
    return [c, of[0].map((_, i) => mean(of.map((p) => p[i])))];
  }));
  const out = new Map<number, Vector>();
  for (const e of ds.episodes) {
    const own = cameras.map((c) => parts.get(`${e.index}\u0000${c}`)?.part);
    if (!own.some(Boolean)) continue;
    out.set(e.index, Float64Array.from(cameras.flatMap((c, i) => own[i] ?? fill.get(c)!), (v) => v / Math.sqrt(cameras.length)));
  }
  return out;
}

/** Each dimension's standard deviation over every frame of the dataset. */
function frameStd(ds: EvalDataset, rows: (e: EvalEpisode) => number[][]): number[] {
  const dims = ds.episodes.map((e) => rows(e)[0]?.length ?? 0).find((d) => d > 0) ?? 0;
  return Array.from({ length: dims }, (_, j) => std(ds.episodes.flatMap((e) => rows(e).map((r) => r[j]).filter(Number.isFinite))));
}

/** Spread of episodes' per-joint means and spreads, each joint in its overall standard deviation. */
function motionVariety(ds: EvalDataset, key: "state" | "action", label: string): SubScore {
  const sd = frameStd(ds, (e) => e[key]);
  const dims = sd.map((s, j) => (s > 0 ? j : -1)).filter((j) => j >= 0);
  const episodes = ds.episodes.filter((e) => e[key].length >= 2);
  if (!dims.length || episodes.length < 2) return sub(`${key}-variety`, label, null, null, `Needs two episodes with a changing ${key} to compare.`);
  const vectors = episodes.map((e) => Float64Array.from(dims.flatMap((j) => {
    const column = e[key].map((r) => r[j]).filter(Number.isFinite);
    return [mean(column) / sd[j], std(column) / sd[j]];
  })));
  const spread = mean([...pairwiseDistances(vectors)]) / Math.sqrt(dims.length);
  return sub(`${key}-variety`, label, spread / MOTION_SPREAD_FULL, spread, `Mean distance between episodes' per-joint mean and spread, per joint and in its overall standard deviation; ${MOTION_SPREAD_FULL} scores 1.`, "σ");
}

function taskVariety(ds: EvalDataset): SubScore {
  const counts = new Map<string, number>();
  for (const e of ds.episodes) counts.set(e.task, (counts.get(e.task) ?? 0) + 1);
  const n = ds.episodes.length;
  if (!n) return sub("task-variety", "Task variety", null, null, "No episodes.");
  const entropy = -[...counts.values()].reduce((a, c) => a + (c / n) * Math.log(c / n), 0);
  const evenness = counts.size > 1 ? entropy / Math.log(counts.size) : 1;
  return sub("task-variety", "Task variety", entropy / Math.log(TASKS_FULL), counts.size, `${counts.size} task${counts.size === 1 ? "" : "s"}, used ${(evenness * 100).toFixed(0)}% evenly (normalised entropy); ${TASKS_FULL} evenly used tasks score 1.`, "tasks");
}

/** Each episode's state and action, resampled to TRAJECTORY_POINTS rows, each joint in its overall standard deviation (none when no joint moves in the whole dataset). */
function trajectories(ds: EvalDataset): Map<number, Vector> {
  const sdState = frameStd(ds, (e) => e.state);
  const sdAction = frameStd(ds, (e) => e.action);
  const out = new Map<number, Vector>();
  for (const e of ds.episodes) {
    const length = Math.max(e.state.length, e.action.length);
    if (!length) continue;
    const v: number[] = [];
    for (let p = 0; p < TRAJECTORY_POINTS; p++) {
      const f = Math.round((p * (length - 1)) / (TRAJECTORY_POINTS - 1));
      sdState.forEach((s, j) => s > 0 && v.push((e.state[Math.min(f, e.state.length - 1)]?.[j] ?? 0) / s));
      sdAction.forEach((s, j) => s > 0 && v.push((e.action[Math.min(f, e.action.length - 1)]?.[j] ?? 0) / s));
    }
    if (v.length) out.set(e.index, Float64Array.from(v, (x) => (Number.isFinite(x) ? x : 0)));
  }
  return out;
}

/**
 * Flags pairs of episodes with the same motion and, where both have video, the same picture.
 * Candidates come from episodes sorted by their trajectory's mean: the RMS difference of two
 * trajectories is at least the difference of their means, so the scan stops early and misses nothing.
 */
function findDuplicates(ds: EvalDataset, descriptors: Map<number, Vector>, findings: Findings): number {
  const traj = [...trajectories(ds)].map(([index, v]) => ({ index, v, m: mean([...v]) })).sort((a, b) => a.m - b.m);
  const flagged = new Set<number>();
  for (let i = 0; i < traj.length; i++) {
    for (let j = i + 1; j < traj.length && traj[j].m - traj[i].m <= DUPLICATE_TRAJECTORY; j++) {
      const [a, b] = [traj[i], traj[j]];
      if (a.v.length !== b.v.length) continue;
      const rms = distance(a.v, b.v) / Math.sqrt(Math.max(1, a.v.length));
      if (rms > DUPLICATE_TRAJECTORY) continue;
      const [da, db] = [descriptors.get(a.index), descriptors.get(b.index)];
      const seen = da && db ? distance(da, db) : null;
      if (seen !== null && seen > DUPLICATE_DESCRIPTOR) continue;
      const values = { trajectoryRms: Number(rms.toFixed(4)), ...(seen === null ? {} : { descriptorDistance: Number(seen.toFixed(4)) }) };
      const how = seen === null ? "the same motion (no video to compare)" : "the same motion and picture";
      findings.add(a.index, { flag: "duplicate", detail: `${how} as episode ${b.index}`, values: { ...values, other: b.index } });
      findings.add(b.index, { flag: "duplicate", detail: `${how} as episode ${a.index}`, values: { ...values, other: a.index } });
      flagged.add(a.index).add(b.index);
    }
  }
  return flagged.size;
}

/** Spread and cluster structure of the visual descriptors (null each when too few episodes have video). */
function visualScores(descriptors: Vector[], isModel: boolean): SubScore[] {
  const n = descriptors.length;
  if (n < 2) {
    const why = n ? "Only one episode has video frames to compare." : "No video frames were sampled.";
    return [sub("visual-spread", "Visual spread", null, null, why), sub("visual-clusters", "Visual clusters", null, null, why), sub("cluster-balance", "Cluster balance", null, null, why)];
  }
  const spread = mean([...pairwiseDistances(descriptors)]);
  const full = isModel ? "embeddings at a cosine similarity of 0.875" : "every 8×8 block a quarter of the grey range apart, or colours overlapping about 94%";
  const spreadScore = sub("visual-spread", "Visual spread", spread / SPREAD_FULL, spread, `Mean distance between episodes' visual descriptors; ${SPREAD_FULL} (${full}) scores 1.`);
  const clustering = bestClustering(descriptors);
  if (!clustering) {
    const why = "Needs three episodes with video to cluster.";
    return [spreadScore, sub("visual-clusters", "Visual clusters", null, null, why), sub("cluster-balance", "Cluster balance", null, null, why)];
  }
  const { k, silhouette, sizes } = clustering;
  const entropy = -sizes.reduce((a, c) => a + (c ? (c / n) * Math.log(c / n) : 0), 0) / Math.log(k);
  return [
    spreadScore,
    sub("visual-clusters", "Visual clusters", silhouette, silhouette, `Silhouette of k-means with k = ${k} (the best of 2..${Math.min(MAX_CLUSTERS, n - 1)}): how distinct the groups of look-alike episodes are.`),
    sub("cluster-balance", "Cluster balance", entropy, entropy, `Normalised entropy of the ${k} clusters' sizes (${sizes.join(", ")}): 1 when episodes spread evenly over them.`),
  ];
}

/** Scores visual diversity and maps the episodes in 2-D by their visual descriptor. */
export function scoreDiversity(ds: EvalDataset, { samples, embeddings }: { samples: CameraSamples[]; embeddings?: EmbeddingSums }): { output: MetricOutput; visualMap: { index: number; x: number; y: number }[] } {
  const findings = new Findings();
  const descriptors = episodeDescriptors(ds, samples, embeddings);
  const indices = [...descriptors.keys()];
  const vectors = indices.map((i) => descriptors.get(i)!);
  const duplicates = findDuplicates(ds, descriptors, findings);
  const n = ds.episodes.length;
  const subScores = [
    ...visualScores(vectors, Boolean(embeddings)),
    motionVariety(ds, "state", "State variety"),
    motionVariety(ds, "action", "Action variety"),
    taskVariety(ds),
    sub("distinct", "Distinct episodes", n ? 1 - duplicates / n : null, duplicates, `${duplicates} of ${n} episodes nearly repeat another (same motion${vectors.length ? " and picture" : ""}).`, "episodes"),
  ];
  const notes = vectors.length ? [] : ["No video frames were sampled, so visual spread and clusters are not measured; motion and task variety are."];
  const map = principalMap(vectors).map(([x, y], i) => ({ index: indices[i], x: Number(x.toFixed(4)), y: Number(y.toFixed(4)) }));
  const output = metricOutput("v", subScores, findings, {
    notes,
    summary: (score) => (score === null ? "Nothing to compare the episodes on." : `${vectors.length ? "Visual descriptors, motion" : "Motion"} and tasks compared over ${n} episodes; ${duplicates} nearly repeat another.`),
  });
  return { output, visualMap: map };
}
