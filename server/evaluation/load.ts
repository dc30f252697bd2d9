import { AppError } from "../errors";
import { resolveFeatureMap, detectFeatures } from "../datasets/feature-map";
import type { StoredFeature } from "../datasets/datasets.schemas";
import { findDatasetRoot, readSourceEpisodes, type SourceVersion } from "../datasets/lerobot/source";
import type { EvalDataset } from "./evaluation.schemas";

// A LeRobot dataset folder (v3.0 or v2.1) as the metrics read it: per episode, its timestamps,
// state and action vectors, task, video spans and per-frame extras (success labels).

/** Per-frame scalar features read as extras when the dataset has them. */
const EXTRA_KEYS = ["next.success", "success", "is_success", "episode_success", "next.reward", "next.done"];

export async function loadEvalDataset(dir: string, { mapping }: { mapping?: { action: string; state: string } | null } = {}): Promise<{ dataset: EvalDataset; version: SourceVersion }> {
  const { root, version, info } = await findDatasetRoot(dir);
  const features = info.features as Record<string, StoredFeature> | undefined;
  if (!features || typeof features !== "object") throw new AppError("BAD_REQUEST", "meta/info.json has no features: this is not a LeRobot dataset, or its info.json is damaged");
  const fps = Number(info.fps);
  if (!(fps > 0 && fps <= 1000)) throw new AppError("BAD_REQUEST", `meta/info.json gives fps ${JSON.stringify(info.fps)}; the metrics need the frame rate`);
  const map = resolveFeatureMap(features, mapping ?? null);
  const detection = detectFeatures(features);
  const namesOf = (key: string) => detection.features.find((f) => f.key === key)?.names ?? [];
  const extras = EXTRA_KEYS.filter((k) => k in features);
  const episodes = await readSourceEpisodes(root, version, info, map, extras);
  if (!episodes.length) throw new AppError("BAD_REQUEST", "The dataset has no episodes to score");
  return {
    version,
    dataset: {
      fps,
      robotType: typeof info.robot_type === "string" ? info.robot_type : null,
      names: { action: namesOf(map.action), state: namesOf(map.state) },
      cameras: map.cameras.map((c) => c.camera),
      episodes: episodes.map((e) => ({
        index: e.index,
        task: e.task,
        timestamps: e.rows.map((r) => r.timestamp),
        state: e.rows.map((r) => r["observation.state"]),
        action: e.rows.map((r) => r.action),
        videos: e.videos,
        extras: Object.fromEntries(extras.map((k) => [k, e.rows.map((r) => r.extra[k])])),
      })),
    },
  };
}
