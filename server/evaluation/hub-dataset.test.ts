import { describe, expect, it } from "vitest";
import { isNeededFile } from "./hub-dataset";

// Which files of a hub dataset a scoring fetches: what the metrics read, and no more.

describe("the files a scoring fetches from the hub", () => {
  it("takes the metadata and the frames of v3.0 and v2.1, leaves statistics, and the videos unless a visual metric needs them", () => {
    const needed = ["meta/info.json", "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet", "meta/episodes.jsonl", "meta/tasks.jsonl", "data/chunk-000/file-000.parquet", "data/chunk-000/episode_000000.parquet"];
    for (const f of needed) expect(isNeededFile(f, false), f).toBe(true);
    for (const f of ["meta/stats.json", "meta/episodes_stats.jsonl", "README.md", ".gitattributes", "images/cover.png", "videos/observation.images.top/chunk-000/file-000.mp4"]) expect(isNeededFile(f, false), f).toBe(false);
    expect(isNeededFile("videos/observation.images.top/chunk-000/file-000.mp4", true)).toBe(true);
    expect(isNeededFile("videos/chunk-000/observation.images.top/episode_000000.mp4", true)).toBe(true);
  });
});
