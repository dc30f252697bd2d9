import { AppError } from "../errors";
import { cameraNameSchema, featureMapSchema, featuresFromJson, type FeatureDetection, type FeatureMap, type FeatureSummary, type ImportMapping, type StoredFeature } from "./datasets.schemas";

// Which features of a LeRobot dataset are its action, its state and its cameras. LeRobot lets a
// dataset name its features as it likes (`actions`, `state`, a camera called `image`); its own
// recorder writes `action`, `observation.state` and `observation.images.<camera>`. An import
// proposes a mapping from the features' names, types, shapes and `names` entries; the person
// confirms or changes it; the dataset keeps its own names when Gantry writes it again.

const IMAGE_PREFIX = "observation.images.";
/** Per-frame bookkeeping every LeRobot dataset has; never an action, state or extra. */
export const BOOKKEEPING_KEYS = ["timestamp", "frame_index", "episode_index", "index", "task_index"];
const FLOAT_TYPES = ["float32", "float64", "float16"];
const SCALAR_TYPES = ["float32", "float64", "int64", "int32", "bool"];

/** The keys a dataset's files use. */
export interface DatasetKeys {
  action: string;
  state: string;
  cameras: Array<{ camera: string; key: string }>;
}

export const standardVideoKey = (camera: string) => `${IMAGE_PREFIX}${camera}`;

/** The stored map of a dataset, or LeRobot's usual keys (cameras from its features) when it has none. */
export function datasetKeys(dataset: { featureMap: unknown; features: unknown }): DatasetKeys & { dropped: FeatureMap["dropped"] } {
  const parsed = featureMapSchema.safeParse(dataset.featureMap);
  if (parsed.success) return parsed.data;
  const f = featuresFromJson(dataset.features);
  const cameras = Object.keys(f)
    .filter((k) => f[k]?.dtype === "video" && k.startsWith(IMAGE_PREFIX))
    .map((key) => ({ camera: key.slice(IMAGE_PREFIX.length), key }));
  return { action: "action", state: "observation.state", cameras, dropped: [] };
}

/** A camera name (a folder name, part of a URL) for a video feature's key, unique among `taken`. */
export function cameraNameFor(key: string, taken: string[]): string {
  const bare = key.startsWith(IMAGE_PREFIX) ? key.slice(IMAGE_PREFIX.length) : key.replace(/^observation\.(images?\.)?/, "");
  let name = bare.replace(/[^A-Za-z0-9_-]+/g, "_").replace(/^[^A-Za-z0-9]+/, "").slice(0, 56) || "camera";
  if (!cameraNameSchema.safeParse(name).success) name = "camera";
  let unique = name;
  for (let i = 2; taken.includes(unique); i++) unique = `${name}_${i}`;
  return unique;
}

const width = (f: StoredFeature) => (Array.isArray(f.shape) && f.shape.length === 1 && Number.isInteger(f.shape[0]) ? f.shape[0] : null);
const isVector = (f: StoredFeature) => FLOAT_TYPES.includes(String(f.dtype)) && (width(f) ?? 0) >= 1;
const isScalar = (f: StoredFeature) => SCALAR_TYPES.includes(String(f.dtype)) && (f.shape ?? [1]).reduce((a, b) => a * b, 1) === 1;

/** Flat per-dimension names (`names` may be a list or `{ motors: [...] }`). */
export function flatNames(names: unknown): string[] | null {
  if (Array.isArray(names)) return names.map(String);
  if (names && typeof names === "object") {
    const first = Object.values(names as Record<string, unknown>).find(Array.isArray);
    return first ? (first as unknown[]).map(String) : null;
  }
  return null;
}

const MAX_JOINTS = 64;
const JOINTISH = /joint|motor|shoulder|elbow|wrist|gripper|\.pos\b|_pos\b|waist|arm|finger|\bx\b|\by\b|\bz\b/i;

/** How much a float vector looks like the dataset's action (or state): 0 when it does not. */
function score(key: string, f: StoredFeature, role: "action" | "state"): number {
  if (!isVector(f) || BOOKKEEPING_KEYS.includes(key)) return 0;
  const k = key.toLowerCase();
  let s = 0;
  if (role === "action") {
    if (k === "action") s = 100;
    else if (/^(observation\.)?actions?$/.test(k)) s = 90;
    else if (/(^|[._])actions?($|[._])/.test(k) || k.includes("action")) s = 70;
    else if (/^(target|command|cmd)s?([._]|$)/.test(k)) s = 40;
  } else {
    if (k === "observation.state") s = 100;
    else if (/^(observation\.)?(robot_)?states?$/.test(k)) s = 90;
    else if (/(^|[._])(qpos|joint_positions?|joints?|proprio(ception)?)($|[._])/.test(k)) s = 75;
    else if (k.includes("state") && !k.includes("environment")) s = 70;
    else if (k.includes("state")) s = 30;
  }
  if (s === 0) return 0;
  // Joints number a handful to a few dozen; a long vector (an embedding, a point cloud) is not them.
  if ((width(f) ?? 0) > MAX_JOINTS && s < 90) return 0;
  const names = flatNames(f.names);
  if (names?.some((n) => JOINTISH.test(n))) s += 5;
  return s;
}


/** Proposes which features are the action, the state and the cameras. */
export function detectFeatures(rawFeatures: Record<string, StoredFeature>): FeatureDetection {
  const features = Object.entries(rawFeatures).map(([key, f]) => ({ key, dtype: String(f?.dtype ?? "?"), shape: Array.isArray(f?.shape) ? f.shape.map(Number) : [], names: flatNames(f?.names) }));
  const vectors = features.filter((f) => isVector(rawFeatures[f.key]) && !BOOKKEEPING_KEYS.includes(f.key));
  const ranked = (role: "action" | "state") =>
    vectors
      .map((f) => ({ key: f.key, s: score(f.key, rawFeatures[f.key], role) }))
      .sort((a, b) => b.s - a.s)
      .filter((c, _i, all) => c.s > 0 || all.every((x) => x.s === 0));
  const pick = (list: Array<{ key: string; s: number }>, exclude: string | null) => {
    const usable = list.filter((c) => c.key !== exclude && c.s >= 40);
    if (!usable.length) return null;
    return usable.length > 1 && usable[1].s === usable[0].s ? null : usable[0].key;
  };
  const actionRanked = ranked("action");
  const action = pick(actionRanked, null);
  // A state usually has one value per joint, as the action does: that settles a tie.
  const actionWidth = action ? width(rawFeatures[action]) : null;
  const stateRanked = ranked("state")
    .map((c) => ({ ...c, s: c.s > 0 && actionWidth !== null && width(rawFeatures[c.key]) === actionWidth ? c.s + 2 : c.s }))
    .sort((a, b) => b.s - a.s);
  const state = pick(stateRanked, action);
  const cameras = features.filter((f) => f.dtype === "video").map((f) => f.key);
  const isUsual = action === "action" && state === "observation.state" && cameras.every((k) => k.startsWith(IMAGE_PREFIX) && cameraNameSchema.safeParse(k.slice(IMAGE_PREFIX.length)).success);
  const order = (list: Array<{ key: string }>) => [...list.map((c) => c.key), ...vectors.map((v) => v.key).filter((k) => !list.some((c) => c.key === k))];
  const dropped = droppedFeatures(rawFeatures, { action, state, cameras });
  return { features, candidates: { action: order(actionRanked), state: order(stateRanked) }, proposed: { action, state, cameras }, needsConfirmation: !isUsual || dropped.length > 0, dropped };
}

/** The features a mapping leaves out, with why, for the person to see before and after. */
function droppedFeatures(rawFeatures: Record<string, StoredFeature>, map: { action: string | null; state: string | null; cameras: string[] }): FeatureMap["dropped"] {
  const dropped: FeatureMap["dropped"] = [];
  for (const [key, raw] of Object.entries(rawFeatures)) {
    if (key === map.action || key === map.state || BOOKKEEPING_KEYS.includes(key) || map.cameras.includes(key)) continue;
    const dtype = String(raw?.dtype ?? "?");
    const shape = Array.isArray(raw?.shape) ? raw.shape : [];
    if (dtype === "video") dropped.push({ key, reason: "a camera left out at import" });
    else if (dtype === "image") dropped.push({ key, reason: "images stored inside the parquet files; Gantry imports cameras stored as video" });
    else if (isScalar(raw)) continue; // kept as an extra per-frame value
    else if (isVector(raw) && (!map.action || !map.state)) continue; // may yet be chosen as the action or state
    else dropped.push({ key, reason: `${dtype}${shape.length ? ` of shape [${shape.join(", ")}]` : ""}: Gantry keeps the action, the state, cameras and single per-frame values` });
  }
  return dropped;
}

const describe = (f: FeatureSummary) => `${f.key} (${f.dtype}${f.shape.length ? ` [${f.shape.join(", ")}]` : ""})`;

/**
 * The feature map an import uses: the person's mapping, checked against the features, or the
 * proposal when none was given (refused, listing the features found, when it cannot decide).
 */
export function resolveFeatureMap(rawFeatures: Record<string, StoredFeature>, mapping: ImportMapping | null | undefined): FeatureMap {
  const detection = detectFeatures(rawFeatures);
  const found = detection.features.filter((f) => !BOOKKEEPING_KEYS.includes(f.key)).map(describe).join(", ") || "none";
  const how = 'name them in the import (action and state: for an upload, the query parameters action= and state=)';
  const action = mapping?.action ?? detection.proposed.action;
  const state = mapping?.state ?? detection.proposed.state;
  if (!action || !state) {
    const missing = [!action && "action", !state && "state"].filter(Boolean).join(" and ");
    throw new AppError("BAD_REQUEST", `Gantry could not tell which feature is the dataset's ${missing}. Features found: ${found}. Float vectors that could be: ${detection.candidates.action.join(", ") || "none"} — ${how}`);
  }
  for (const [role, key] of [["action", action], ["state", state]] as const) {
    const f = rawFeatures[key];
    if (!f) throw new AppError("BAD_REQUEST", `The dataset has no feature ${key} to use as its ${role}. Features found: ${found}`);
    if (BOOKKEEPING_KEYS.includes(key)) throw new AppError("BAD_REQUEST", `Feature ${key} cannot be the ${role}: it is LeRobot's per-frame bookkeeping; choose a vector of floats, one per joint. Features found: ${found}`);
    if (!isVector(f)) throw new AppError("BAD_REQUEST", `Feature ${describe(detection.features.find((x) => x.key === key)!)} cannot be the ${role}: it must be a vector of floats, one per joint. Features found: ${found}`);
  }
  if (action === state) throw new AppError("BAD_REQUEST", `Feature ${action} cannot be both the action and the state; choose two features`);
  const videoKeys = detection.proposed.cameras;
  const chosen = mapping?.cameras ?? videoKeys;
  for (const key of chosen) {
    if (!videoKeys.includes(key)) throw new AppError("BAD_REQUEST", `${key} is not a video feature of the dataset, so it cannot be a camera; its video features: ${videoKeys.join(", ") || "none"}`);
  }
  const cameras: FeatureMap["cameras"] = [];
  for (const key of videoKeys.filter((k) => chosen.includes(k))) cameras.push({ camera: cameraNameFor(key, cameras.map((c) => c.camera)), key });
  return { action, state, cameras, dropped: droppedFeatures(rawFeatures, { action, state, cameras: cameras.map((c) => c.key) }) };
}

/** Scalar per-frame features an import keeps beside the action and state. */
export function extraKeys(rawFeatures: Record<string, StoredFeature>, map: Pick<FeatureMap, "action" | "state">): string[] {
  return Object.keys(rawFeatures).filter((k) => k !== map.action && k !== map.state && !BOOKKEEPING_KEYS.includes(k) && isScalar(rawFeatures[k]));
}
