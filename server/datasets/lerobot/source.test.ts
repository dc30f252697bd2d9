import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import zlib from "node:zlib";
import { writeV21Dataset, type GeneratedDataset } from "../../../tests/helpers/lerobot-datasets";
import type { StoredFeature } from "../datasets.schemas";
import { extraKeys, resolveFeatureMap } from "../feature-map";
import { isInfoFile } from "../archive-uploads";
import { inspectDataset } from "../import.service";
import { parquetBytes } from "./parquet";
import { findDatasetRoot, readSourceEpisodes } from "./source";

// The numbers and text a dataset brings are checked as it is read, before an import stores any
// of it: what Postgres or the episode page cannot hold is refused with a sentence naming it.

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

async function dataset(change?: (dir: string) => Promise<void>, spec: Partial<GeneratedDataset> = {}) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-source-"));
  dirs.push(dir);
  await writeV21Dataset(dir, { episodes: 2, frames: 5, ...spec });
  await change?.(dir);
  const { root, version, info } = await findDatasetRoot(dir);
  const features = info.features as Record<string, StoredFeature>;
  const map = resolveFeatureMap(features, null);
  return readSourceEpisodes(root, version, info, map, extraKeys(features, map));
}
const episodesJsonl = (dir: string, rows: unknown[]) => fs.writeFile(path.join(dir, "meta/episodes.jsonl"), rows.map((r) => JSON.stringify(r)).join("\n") + "\n");

describe("a dataset's episodes as an import reads them", () => {
  it("reads a dataset as written", async () => {
    expect((await dataset()).map((e) => [e.index, e.length, e.task])).toEqual([[0, 5, "Pick the cube"], [1, 5, "Pick the cube"]]);
  });

  it("reads data files other tools compressed with gzip or brotli, not only LeRobot's snappy", async () => {
    const gzip = await dataset(undefined, { compression: { codec: "GZIP", compress: (b) => new Uint8Array(zlib.gzipSync(b)) } });
    const brotli = await dataset(undefined, { compression: { codec: "BROTLI", compress: (b) => new Uint8Array(zlib.brotliCompressSync(b)) } });
    const snappy = await dataset();
    expect(gzip.map((e) => e.rows)).toEqual(snappy.map((e) => e.rows));
    expect(brotli.map((e) => e.rows)).toEqual(snappy.map((e) => e.rows));
    expect(snappy[0].rows).toHaveLength(5);
  });

  it("reads a v2.0 dataset as v2.1, whose layout it has", async () => {
    const episodes = await dataset(undefined, { codebaseVersion: "v2.0" });
    expect(episodes.map((e) => [e.index, e.length])).toEqual([[0, 5], [1, 5]]);
  });

  it("finds a dataset wrapped in the folders an archive was made from, and refuses to guess between two", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-source-"));
    dirs.push(dir);
    const deep = path.join(dir, "home/ana/.cache/huggingface/lerobot/ana/pick");
    await writeV21Dataset(deep, { episodes: 1, frames: 5 });
    expect((await findDatasetRoot(dir)).root).toBe(deep);
    // An uploaded archive's info file is fetched from as deep down, for a web process that did not unpack it.
    expect(isInfoFile("home/ana/.cache/huggingface/lerobot/ana/pick/meta/info.json")).toBe(true);
    await writeV21Dataset(path.join(dir, "home/ana/.cache/huggingface/lerobot/ana/place"), { episodes: 1, frames: 5 });
    await expect(findDatasetRoot(dir)).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/holds 2 LeRobot datasets \(.*ana\/pick, .*ana\/place\); import or score one dataset at a time/) });
    const empty = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-source-"));
    dirs.push(empty);
    await fs.mkdir(path.join(empty, "a/b"), { recursive: true });
    await expect(findDatasetRoot(empty)).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/^No meta\/info.json found in this folder or up to 8 folders below it/) });
    // A wrapping folder may have any name, a dataset's own folder names included.
    const named = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-source-"));
    dirs.push(named);
    await writeV21Dataset(path.join(named, "data/pick"), { episodes: 1, frames: 5 });
    expect((await findDatasetRoot(named)).root).toBe(path.join(named, "data/pick"));
    // A folder too wide to search whole is said to be, not called no dataset.
    const wide = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-source-"));
    dirs.push(wide);
    for (let i = 0; i < 2_100; i++) await fs.mkdir(path.join(wide, `f${i}`));
    await expect(findDatasetRoot(wide)).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/before the search stopped.*give the dataset's own folder/) });
  });

  it("refuses an episode listed twice, a task with a NUL character, and states that are not numbers", async () => {
    await expect(dataset((dir) => episodesJsonl(dir, [0, 0].map((i) => ({ episode_index: i, tasks: ["Pick"], length: 5 }))))).rejects.toMatchObject({ code: "BAD_REQUEST", message: "meta/episodes.jsonl lists episode 0 twice; each episode_index may appear once" });
    await expect(dataset((dir) => episodesJsonl(dir, [{ episode_index: 0, tasks: ["Pick\u0000"], length: 5 }]))).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/^Episode 0's task holds a NUL character/) });
    const withNaN = (dir: string) =>
      fs.writeFile(
        path.join(dir, "data/chunk-000/episode_000001.parquet"),
        parquetBytes([
          { name: "action", leaf: "FLOAT", depth: 1, data: Array.from({ length: 5 }, () => [0, 0, 0, 0, 0, 0]) },
          { name: "observation.state", leaf: "FLOAT", depth: 1, data: Array.from({ length: 5 }, (_, f) => [0, 0, f === 3 ? Number.NaN : 0, 0, 0, 0]) },
          { name: "timestamp", leaf: "FLOAT", depth: 0, data: Array.from({ length: 5 }, (_, f) => f / 10) },
          { name: "frame_index", leaf: "INT64", depth: 0, data: Array.from({ length: 5 }, (_, f) => f) },
          { name: "episode_index", leaf: "INT64", depth: 0, data: Array.from({ length: 5 }, () => 1) },
          { name: "index", leaf: "INT64", depth: 0, data: Array.from({ length: 5 }, (_, f) => 5 + f) },
          { name: "task_index", leaf: "INT64", depth: 0, data: Array.from({ length: 5 }, () => 0) },
        ]),
      );
    await expect(dataset(withNaN)).rejects.toMatchObject({ code: "BAD_REQUEST", message: "Episode 1, frame 3: observation.state holds a value that is not a finite number; the dataset's frames must be numbers" });
  });

  it("refuses a feature whose shape is not a list of whole numbers, when it is inspected", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-source-"));
    dirs.push(dir);
    const info = await writeV21Dataset(dir, { episodes: 1, frames: 5 });
    expect(await inspectDataset(dir)).toMatchObject({ version: "v2.1", proposed: { action: "action", state: "observation.state" } });
    const features = info.features as Record<string, { shape: unknown }>;
    features.action.shape = ["six"];
    await fs.writeFile(path.join(dir, "meta/info.json"), JSON.stringify(info));
    await expect(inspectDataset(dir)).rejects.toMatchObject({ code: "BAD_REQUEST", message: 'meta/info.json\'s feature action has the shape ["six"]; a shape is a list of whole numbers' });
  });
});
