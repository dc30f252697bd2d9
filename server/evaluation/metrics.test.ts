import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parquetBytes } from "../datasets/lerobot/parquet";
import { readParquetRows } from "../datasets/lerobot/source";
import { describe, expect, it } from "vitest";
import type { EvalDataset, EvalEpisode, MetricOutput } from "./evaluation.schemas";
import { scoreConsistency } from "./consistency";
import { scoreCoverage } from "./coverage";
import { loadEvalDataset } from "./load";
import { scoreRobot } from "./robot";
import { scoreTrajectory } from "./trajectory";
import { decideUnits } from "./units";

// The numeric metrics (t, r, a, c) on generated datasets with one known defect each, against a
// clean twin, and on the real SO-101 recording kept in the repository.

const FPS = 30;
const NAMES = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"];

/** A teleoperated-looking episode: smooth joint motion in −100..100 (the gripper 0..100), the state one frame behind. */
function episode(index: number, { frames = 300, scale = 60, phase = index * 0.7, lag = 1 }: { frames?: number; scale?: number; phase?: number; lag?: number } = {}): EvalEpisode {
  const action = Array.from({ length: frames }, (_, t) => NAMES.map((n, j) => (n.startsWith("gripper") ? 50 + 45 * Math.sin(t / 40 + phase) : scale * Math.sin(t / (25 + 7 * j) + phase + j))));
  const state = action.map((_, t) => action[Math.max(0, t - lag)].map((v) => v * 0.98));
  return { index, task: "pick the cube", timestamps: Array.from({ length: frames }, (_, t) => t / FPS), state, action, videos: {}, extras: {} };
}

function dataset(episodes: EvalEpisode[]): EvalDataset {
  return { fps: FPS, robotType: "so101_follower", names: { action: NAMES, state: NAMES }, cameras: [], episodes };
}

const clean = () => dataset(Array.from({ length: 12 }, (_, i) => episode(i)));
const flagsOf = (out: MetricOutput, index: number) => (out.findings.get(index) ?? []).map((f) => f.flag);
const allFlags = (out: MetricOutput) => [...out.findings.values()].flat().map((f) => f.flag);
const subScore = (out: MetricOutput, key: string) => out.result.subScores.find((s) => s.key === key)!.score!;

function all(ds: EvalDataset) {
  const units = decideUnits(ds);
  return { t: scoreTrajectory(ds), r: scoreRobot(ds, units).output, a: scoreConsistency(ds), c: scoreCoverage(ds), units };
}

describe("the numeric metrics", () => {
  it("raise no flag on a clean dataset, and score it well", () => {
    const { t, r, a, c, units } = all(clean());
    expect(units.kind).toBe("range-100");
    for (const out of [t, r, a, c]) {
      expect(allFlags(out), out.result.code).toEqual([]);
      expect(out.result.score, out.result.code).toBeGreaterThan(0.6);
    }
    expect(subScore(t, "alignment")).toBe(1);
  });

  it("flag a frozen joint on its episode and lower nothing else", () => {
    const ds = clean();
    for (const row of ds.episodes[3].state) row[1] = 12.5;
    const { r } = all(ds);
    expect(flagsOf(r, 3)).toEqual(["frozen-joint"]);
    expect(r.findings.get(3)![0].detail).toMatch(/shoulder_lift.pos does not move/);
    expect(allFlags(r)).toEqual(["frozen-joint"]);
  });

  it("flag a static episode", () => {
    const ds = clean();
    ds.episodes[5] = { ...episode(5, { scale: 0.05 }), action: ds.episodes[5].action.map(() => [1, 2, 3, 4, 5, 50]), state: ds.episodes[5].state.map(() => [1, 2, 3, 4, 5, 50]) };
    const { r } = all(ds);
    expect(flagsOf(r, 5)).toContain("static-episode");
    expect(flagsOf(r, 5)).toContain("inactive-action");
  });

  it("flag dropped frames and jittery timestamps, and lower regularity", () => {
    const ds = clean();
    ds.episodes[2].timestamps = ds.episodes[2].timestamps.map((t, i) => t + (i >= 100 ? 5 / FPS : 0));
    ds.episodes[4].timestamps = ds.episodes[4].timestamps.map((t, i) => t + (i % 2 ? 0.45 / FPS : 0));
    const { t } = all(ds);
    expect(flagsOf(t, 2)).toEqual(["dropped-frames"]);
    expect(t.findings.get(2)![0].values.dropped).toBe(5);
    expect(flagsOf(t, 4)).toEqual(["jittery-timestamps"]);
    expect(subScore(t, "dropped")).toBeLessThan(subScore(all(clean()).t, "dropped"));
  });

  it("flag NaN values and a state that trails the action", () => {
    const ds = clean();
    ds.episodes[1].action[10][2] = Number.NaN;
    ds.episodes[6] = episode(6, { lag: 12 });
    const { t } = all(ds);
    expect(flagsOf(t, 1)).toContain("not-finite");
    expect(flagsOf(t, 6)).toEqual(["state-action-lag"]);
    expect(t.findings.get(6)![0].values.frames).toBe(12);
  });

  it("judge units from the values: degrees past ±100 are checked at ±180, the normalised range at ±100", () => {
    const degrees = dataset(Array.from({ length: 8 }, (_, i) => episode(i, { scale: 150 })));
    expect(decideUnits(degrees).kind).toBe("degrees");
    expect(allFlags(scoreRobot(degrees, decideUnits(degrees)).output)).not.toContain("limit-violation");
    // The same motion read as the ±100 range would break its limits: the units decide.
    expect(allFlags(scoreRobot(degrees, { kind: "range-100", reason: "" }).output)).toContain("limit-violation");
    const radians = dataset(Array.from({ length: 8 }, (_, i) => episode(i, { scale: 1.2 })));
    expect(decideUnits(radians).kind).toBe("radians");
    const beyond = dataset(Array.from({ length: 8 }, (_, i) => episode(i, { scale: 150 })));
    beyond.episodes[2].action[50][0] = 250;
    expect(flagsOf(scoreRobot(beyond, decideUnits(beyond)).output, 2)).toEqual(expect.arrayContaining(["limit-violation", "discontinuity"]));
  });

  it("flag episodes of unusual length", () => {
    const ds = clean();
    ds.episodes[7] = episode(7, { frames: 40 });
    ds.episodes[8] = episode(8, { frames: 1200 });
    const { c } = all(ds);
    expect(flagsOf(c, 7)).toEqual(["too-short"]);
    expect(flagsOf(c, 8)).toEqual(["too-long"]);
  });

  it("score the real SO-101 recording (no videos) without a crash, in its own units", async () => {
    const { dataset: ds, version } = await loadEvalDataset(path.resolve("tests/fixtures/so101-record-v3"));
    expect(version).toBe("v3.0");
    expect(ds.episodes).toHaveLength(4);
    expect(ds.names.action[0]).toBe("shoulder_pan.pos");
    const { t, r, a, c, units } = all(ds);
    expect(units.kind).toBe("range-100");
    for (const out of [t, r, a, c]) expect(out.result.score, out.result.code).not.toBeNull();
    expect(allFlags(r)).not.toContain("limit-violation");
  });

  it("score a v2.1 dataset like its v3.0 twin", async () => {
    const v3 = path.resolve("tests/fixtures/so101-record-v3");
    const info = JSON.parse(fs.readFileSync(path.join(v3, "meta/info.json"), "utf8"));
    const rows = await readParquetRows(v3, "data/chunk-000/file-000.parquet");
    // The same episodes in the v2.1 layout: one parquet per episode, metadata in JSON lines.
    const v21 = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-v21-twin-"));
    fs.mkdirSync(path.join(v21, "meta"), { recursive: true });
    fs.mkdirSync(path.join(v21, "data/chunk-000"), { recursive: true });
    const { video_path: _video, ...rest } = info;
    fs.writeFileSync(path.join(v21, "meta/info.json"), JSON.stringify({ ...rest, codebase_version: "v2.1", data_path: "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet", video_path: null }));
    const byEpisode = new Map<number, Record<string, unknown>[]>();
    for (const r of rows) byEpisode.set(Number(r.episode_index), [...(byEpisode.get(Number(r.episode_index)) ?? []), r]);
    const task = "Pick the orange cube and place it in the box";
    fs.writeFileSync(path.join(v21, "meta/episodes.jsonl"), [...byEpisode.entries()].map(([i, r]) => JSON.stringify({ episode_index: i, tasks: [task], length: r.length })).join("\n"));
    fs.writeFileSync(path.join(v21, "meta/tasks.jsonl"), JSON.stringify({ task_index: 0, task }));
    for (const [i, r] of byEpisode) {
      fs.writeFileSync(
        path.join(v21, `data/chunk-000/episode_${String(i).padStart(6, "0")}.parquet`),
        parquetBytes([
          { name: "action", leaf: "FLOAT", depth: 1, data: r.map((x) => Array.from(x.action as ArrayLike<number>)) },
          { name: "observation.state", leaf: "FLOAT", depth: 1, data: r.map((x) => Array.from(x["observation.state"] as ArrayLike<number>)) },
          { name: "timestamp", leaf: "FLOAT", depth: 0, data: r.map((x) => Number(x.timestamp)) },
          { name: "frame_index", leaf: "INT64", depth: 0, data: r.map((x) => Number(x.frame_index)) },
          { name: "episode_index", leaf: "INT64", depth: 0, data: r.map((x) => Number(x.episode_index)) },
          { name: "index", leaf: "INT64", depth: 0, data: r.map((x) => Number(x.index)) },
          { name: "task_index", leaf: "INT64", depth: 0, data: r.map(() => 0) },
        ]),
      );
    }
    const twin = await loadEvalDataset(v21);
    const original = await loadEvalDataset(v3);
    expect(twin.version).toBe("v2.1");
    const scores = (ds: EvalDataset) => Object.values(all(ds)).filter((x): x is MetricOutput => "result" in x).map((x) => [x.result.code, x.result.score, allFlags(x)]);
    expect(scores(twin.dataset)).toEqual(scores(original.dataset));
    fs.rmSync(v21, { recursive: true, force: true });
  });
});
