import type { VideoProbe } from "../media/ffmpeg";
import type { EvalDataset, MetricOutput, SubScore } from "./evaluation.schemas";
import type { CameraSamples } from "./frame-stats";
import { clamp01, Findings, mean, median, metricOutput, sub } from "./metric-output";

// h — high-fidelity vision: are there enough cameras, at a usable size and rate, and does each
// episode's video show a sharp, well-exposed, live picture? Judged per episode and camera from
// frames decoded at most 160 px on the long side (see vision.ts); thresholds are for that size.

/** Cameras for full marks: a scene view and a wrist view is the usual SO-101/Koch rig. */
const CAMERAS_FULL = 2;
/** Pixels that score 0 and 1 on resolution, on a log scale: 160×120 cannot show a gripper's fingers, 640×480 is what LeRobot records by default; 320×240 lands at 0.5. */
const RESOLUTION_LOW = 160 * 120;
const RESOLUTION_FULL = 640 * 480;
/** Laplacian variance (160-px grey frame) under which a camera is flagged blurred: sharp test patterns measure 500–13000; under a Gaussian blur of σ 8 px at 640×480 (2 px on the sampled frame, where fine detail is gone to the eye) they measure 10–60. */
export const BLUR_LAPLACIAN_VAR = 50;
/** Laplacian variance from which sharpness scores 1: textured scenes blurred by σ 3 px at 640×480 still reach it. */
export const SHARP_LAPLACIAN_VAR = 150;
/** Mean brightness (0..255) under which a camera is dark: below ~40, shadows crush to black in 8-bit video. */
export const DARK_LUMA = 40;
/** Mean brightness over which a camera is washed out: highlights clip at 255 and little is left below them. */
export const BRIGHT_LUMA = 215;
/** Brightness spread (95th − 5th percentile) under which a picture is flat (fog, a covered lens): about a fifth of the range. */
const LOW_CONTRAST = 48;
/** A frame whose 95th brightness percentile is at most 16 is black: 16 is black in limited-range video, so almost nothing in it is lit. */
const BLACK_P95 = 16;
/** Share of an episode video's samples that must be black to flag it: one black frame may be a fade or a glitch. */
const BLACK_SHARE = 0.5;
/** Mean grey difference (levels) under which two samples are the same picture: a repeated frame decodes to within a fraction of a level, while an arm moving in view changes it by several. */
const FROZEN_DIFF = 0.5;
/** Change of a joint between two samples, as a share of its range over the dataset, that counts as the arm moving (so the picture must change). */
const STATE_MOVED = 0.05;
/** Share of an episode video's moving sample pairs that must be frozen to flag it: one repeat may be a dropped frame, half is a stuck camera. */
const FROZEN_SHARE = 0.5;

const isWrist = (camera: string) => /wrist|hand/i.test(camera);
const round = (x: number, digits = 2) => Number(x.toFixed(digits));

/** Each joint's range over the dataset, from state (or action when there is no state). */
function armRanges(ds: EvalDataset): { rows: (e: EvalDataset["episodes"][number]) => number[][]; ranges: number[] } {
  const useState = ds.episodes.some((e) => e.state.length && e.state[0].length);
  const rows = (e: EvalDataset["episodes"][number]) => (useState ? e.state : e.action);
  const dims = ds.episodes.map((e) => rows(e)[0]?.length ?? 0).find((d) => d > 0) ?? 0;
  const ranges = Array.from({ length: dims }, (_, j) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const e of ds.episodes) for (const r of rows(e)) if (Number.isFinite(r[j])) [lo, hi] = [Math.min(lo, r[j]), Math.max(hi, r[j])];
    return hi > lo ? hi - lo : 0;
  });
  return { rows, ranges };
}

/** Whether any joint moved by STATE_MOVED of its range between two frames of an episode. */
function armMoved(rows: number[][], ranges: number[], a: number, b: number): boolean {
  const [ra, rb] = [rows[a], rows[b]];
  if (!ra || !rb) return false;
  return ranges.some((range, j) => range > 0 && Math.abs(rb[j] - ra[j]) / range >= STATE_MOVED);
}

interface VideoVerdict {
  black: boolean;
  blackFrames: number;
  luma: number;
  contrast: number;
  laplacianVar: number;
  movingPairs: number;
  frozenPairs: number;
  /** Whether any flag was raised on it. */
  flagged: boolean;
}

/** Judges one episode's video and raises its flags. */
function judgeVideo(s: CameraSamples, moved: (a: number, b: number) => boolean, findings: Findings): VideoVerdict {
  const blackFrames = s.p95.filter((p) => p <= BLACK_P95).length;
  const black = blackFrames >= BLACK_SHARE * s.frames.length;
  const luma = median(s.luma);
  const contrast = median(s.p95.map((p, i) => p - s.p05[i]));
  const laplacianVar = median(s.laplacianVar);
  const moving = s.diffs.filter((d) => moved(d.from, d.to));
  const frozen = moving.filter((d) => d.diff < FROZEN_DIFF);
  const at = `camera ${s.camera}`;
  const before = findings.byEpisode.get(s.episode)?.length ?? 0;
  if (black) {
    findings.add(s.episode, { flag: "black-camera", detail: `${at}: ${blackFrames} of ${s.frames.length} sampled frames are black`, values: { blackFrames, frames: s.frames.length, meanLuma: round(luma) } });
  } else {
    if (luma < DARK_LUMA) findings.add(s.episode, { flag: "dark-camera", detail: `${at}: mean brightness ${luma.toFixed(0)}/255 (under ${DARK_LUMA})`, values: { meanLuma: round(luma) } });
    if (luma > BRIGHT_LUMA) findings.add(s.episode, { flag: "overexposed-camera", detail: `${at}: mean brightness ${luma.toFixed(0)}/255 (over ${BRIGHT_LUMA})`, values: { meanLuma: round(luma) } });
    if (laplacianVar < BLUR_LAPLACIAN_VAR) findings.add(s.episode, { flag: "blurred-camera", detail: `${at}: variance of the Laplacian ${laplacianVar.toFixed(1)} (sharp frames are above ${BLUR_LAPLACIAN_VAR})`, values: { laplacianVar: round(laplacianVar) } });
    if (moving.length && frozen.length >= FROZEN_SHARE * moving.length) {
      findings.add(s.episode, { flag: "frozen-camera", detail: `${at}: the picture did not change in ${frozen.length} of ${moving.length} sample steps where the arm moved`, values: { frozenSteps: frozen.length, movingSteps: moving.length, meanDiff: round(mean(frozen.map((d) => d.diff)), 3) } });
    }
  }
  const flagged = (findings.byEpisode.get(s.episode)?.length ?? 0) > before;
  return { black, blackFrames, luma, contrast, laplacianVar, movingPairs: moving.length, frozenPairs: black ? 0 : frozen.length, flagged };
}

/** 1 inside [DARK_LUMA, BRIGHT_LUMA], falling to 0 at pure black or white; scaled down further by a flat picture. */
function exposureScore(v: VideoVerdict): number {
  const brightness = v.luma < DARK_LUMA ? v.luma / DARK_LUMA : v.luma > BRIGHT_LUMA ? (255 - v.luma) / (255 - BRIGHT_LUMA) : 1;
  return Math.min(brightness, clamp01(v.contrast / LOW_CONTRAST));
}

/** Resolution and frame-rate sub-scores from ffprobe, per camera (a camera's smallest file counts). */
function probeScores(ds: EvalDataset, probes: Map<string, VideoProbe>): SubScore[] {
  const perCamera = ds.cameras.flatMap((camera) => {
    const files = new Set(ds.episodes.map((e) => e.videos[camera]?.file).filter((f): f is string => !!f && probes.has(f)));
    const seen = [...files].map((f) => probes.get(f)!);
    if (!seen.length) return [];
    const smallest = seen.reduce((a, b) => (b.width * b.height < a.width * a.height ? b : a));
    const fps = Math.min(...seen.map((p) => p.fps));
    return [{ camera, smallest, fps }];
  });
  if (!perCamera.length) {
    return [
      sub("resolution", "Resolution", null, null, "No video could be read, so no frame size is known.", "px"),
      sub("fps", "Frame rate", null, null, "No video could be read, so no frame rate is known.", "fps"),
    ];
  }
  const resolutionScore = (p: VideoProbe) => Math.log2((p.width * p.height) / RESOLUTION_LOW) / Math.log2(RESOLUTION_FULL / RESOLUTION_LOW);
  const worst = perCamera.reduce((a, b) => (b.smallest.width * b.smallest.height < a.smallest.width * a.smallest.height ? b : a));
  const slowest = perCamera.reduce((a, b) => (b.fps < a.fps ? b : a));
  return [
    sub("resolution", "Resolution", mean(perCamera.map((c) => clamp01(resolutionScore(c.smallest)))), Math.min(worst.smallest.width, worst.smallest.height), `Smallest frames ${worst.smallest.width}×${worst.smallest.height} (camera ${worst.camera}); 640×480 scores 1, 320×240 0.5, 160×120 0, per camera.`, "px"),
    sub("fps", "Frame rate", mean(perCamera.map((c) => Math.min(c.fps, ds.fps) / Math.max(c.fps, ds.fps, 1e-9))), round(slowest.fps), `Slowest camera ${slowest.camera} at ${round(slowest.fps)} fps against the dataset's ${ds.fps} fps; each camera scores its rate over the dataset's (or the reverse).`, "fps"),
  ];
}

/** The sub-scores measured on the sampled frames (null each when no frame was decoded). */
function frameScores(verdicts: VideoVerdict[], frames: number): SubScore[] {
  const lit = verdicts.filter((v) => !v.black);
  const moving = verdicts.reduce((a, v) => a + v.movingPairs, 0);
  const frozen = verdicts.reduce((a, v) => a + v.frozenPairs, 0);
  const blackFrames = verdicts.reduce((a, v) => a + v.blackFrames, 0);
  const none = "No frame could be decoded.";
  return [
    sub("sharpness", "Sharpness", lit.length ? mean(lit.map((v) => clamp01(v.laplacianVar / SHARP_LAPLACIAN_VAR))) : null, lit.length ? median(lit.map((v) => v.laplacianVar)) : null, lit.length ? `Median variance of the Laplacian per episode video (160-px grey frames); ${SHARP_LAPLACIAN_VAR} or more scores 1, under ${BLUR_LAPLACIAN_VAR} is flagged blurred.` : none),
    sub("exposure", "Exposure", lit.length ? mean(lit.map(exposureScore)) : null, lit.length ? median(lit.map((v) => v.luma)) : null, lit.length ? `Median brightness per episode video; ${DARK_LUMA}–${BRIGHT_LUMA} of 255 with a spread of ${LOW_CONTRAST} levels or more scores 1.` : none, "/255"),
    sub("live", "Live picture", moving ? 1 - frozen / moving : null, moving ? frozen : null, moving ? `${frozen} of ${moving} steps between samples where the arm moved showed the same picture.` : frames ? "The arm did not move between samples, so a frozen picture cannot be told from a still scene." : none),
    sub("black", "No black frames", frames ? 1 - blackFrames / frames : null, frames ? blackFrames : null, frames ? `${blackFrames} of ${frames} sampled frames are black.` : none),
  ];
}

/** The camera set: how many views, and whether one rides on the wrist. */
function cameraScores(ds: EvalDataset, problems: number): SubScore[] {
  const n = ds.cameras.length;
  const wrist = ds.cameras.filter(isWrist);
  const videos = n * ds.episodes.length;
  return [
    sub("cameras", "Cameras", Math.min(1, n / CAMERAS_FULL), n, n ? `${n} camera${n === 1 ? "" : "s"} (${ds.cameras.join(", ")}); ${CAMERAS_FULL} or more views score 1.` : "The dataset has no camera."),
    sub("wrist", "Wrist view", wrist.length ? 1 : 0, wrist.length, wrist.length ? `Wrist camera: ${wrist.join(", ")}.` : 'No camera named as a wrist or hand view ("wrist", "hand"); a wrist view shows the grasp the scene cameras miss.'),
    sub("videos", "Videos present", videos ? 1 - problems / videos : null, videos ? videos - problems : null, videos ? `${videos - problems} of ${videos} episode videos (episodes × cameras) could be read.` : "No camera, so no video is expected."),
  ];
}

export const NO_CAMERA = "The dataset has no camera, so there is no picture to judge: high-fidelity vision is not measured (it is left out of the overall score, and a quality gate that asks for it fails).";

/**
 * A dataset recorded without cameras: a score of 0 for "no cameras" would read as bad video and
 * drag the overall down, while a score of 1 would say the vision is fine. Neither is true, so h
 * is not measured, and says why.
 */
function notMeasured(findings: Findings): MetricOutput {
  const why = "The dataset has no camera.";
  const subScores = [sub("cameras", "Cameras", null, 0, why), sub("videos", "Videos present", null, null, why)];
  return metricOutput("h", subScores, findings, { notes: [NO_CAMERA], summary: () => "The dataset has no camera, so there is no picture to judge." });
}

/** Scores high-fidelity vision from the sampled frames, ffprobe's facts and the videos that were missing. */
export function scoreFidelity(ds: EvalDataset, { samples, probes, problems }: { samples: CameraSamples[]; probes: Map<string, VideoProbe>; problems: { episode: number; camera: string; reason: string }[] }): MetricOutput {
  const findings = new Findings();
  for (const p of problems) findings.add(p.episode, { flag: "missing-video", detail: `camera ${p.camera}: ${p.reason}`, values: {} });
  const { rows, ranges } = armRanges(ds);
  const byIndex = new Map(ds.episodes.map((e) => [e.index, e]));
  const verdicts = samples.map((s) => {
    const e = byIndex.get(s.episode);
    return judgeVideo(s, (a, b) => (e ? armMoved(rows(e), ranges, a, b) : false), findings);
  });
  const frames = samples.reduce((a, s) => a + s.frames.length, 0);
  if (!ds.cameras.length) return notMeasured(findings);
  const subScores = [...cameraScores(ds, problems.length), ...probeScores(ds, probes), ...frameScores(verdicts, frames)];
  const notes: string[] = [];
  if (!frames) notes.push("No camera video could be read, so resolution, frame rate, sharpness, exposure, frozen and black frames are not measured.");
  if (problems.length && frames) {
    const first = problems[0];
    notes.push(`${problems.length} of ${ds.cameras.length * ds.episodes.length} episode videos are missing or unreadable (first: episode ${first.episode}, camera ${first.camera}: ${first.reason}).`);
  }
  const flagged = verdicts.filter((v) => v.flagged).length;
  return metricOutput("h", subScores, findings, {
    notes,
    summary: (score) =>
      score === null ? "Nothing to judge the cameras on." : frames ? `${flagged} of ${samples.length} episode videos look blurred, badly exposed, frozen or black; ${problems.length} missing.` : `${ds.cameras.length} camera${ds.cameras.length === 1 ? "" : "s"} declared, but no video could be read.`,
  });
}
