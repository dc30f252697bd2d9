import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findRawEpisode, listingOf } from "./raw-episode";

// An episode's files found the same way in a folder and in a list of paths (an upload whose
// files are blobs in a bucket).

const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-raw-episode-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const paths = [
  "data/episode-000003.jsonl",
  "data/episode-000004.jsonl",
  "images/observation.images.wrist/episode-000003/frame-000000.png",
  "images/front/episode-000003/frame-000000.png",
  "images/front/episode-000003/frame-000001.png",
  "images/front/episode-000004/frame-000000.png",
  "videos/front/episode-000003.mp4",
];
for (const p of paths) {
  fs.mkdirSync(path.join(root, path.dirname(p)), { recursive: true });
  fs.writeFileSync(path.join(root, p), "");
}

describe("finding a raw episode", () => {
  it("finds the same cameras and data file in a list of paths as in a folder", async () => {
    for (const mode of ["edge", "local"] as const) {
      const onDisk = await findRawEpisode(root, 3, mode);
      const listed = await findRawEpisode("", 3, mode, listingOf(paths));
      const relative = (p: string) => path.relative(root, p);
      expect(listed.dataFile).toBe(relative(onDisk.dataFile));
      expect(listed.cameras).toEqual(onDisk.cameras.map((c) => ({ name: c.name, ...(c.framesDir ? { framesDir: relative(c.framesDir) } : {}), ...(c.video ? { video: relative(c.video) } : {}) })));
    }
    expect((await findRawEpisode("", 3, "edge", listingOf(paths))).cameras.map((c) => c.name)).toEqual(["front", "wrist"]);
  });

  it("names what is missing from a list of paths", async () => {
    await expect(findRawEpisode("", 4, "local", listingOf(paths))).rejects.toThrow(/missing videos\/<camera>\/episode-4\.mp4/);
    await expect(findRawEpisode("", 5, "edge", listingOf(paths))).rejects.toThrow(/missing data\/episode-5\.jsonl/);
  });
});
