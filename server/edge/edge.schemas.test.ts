import os from "node:os";
import { describe, expect, it } from "vitest";
import { checkUploadDisk, freeDiskBytes } from "./disk.service";
import { checkManifest } from "./episode-upload-store";
import { ARCHIVE_FORMAT, parseEntryPath } from "./edge.schemas";

describe("episode file names", () => {
  it.each([
    ["images/front/episode-000003/frame-000012.png", { kind: "frame", camera: "front", episodeIndex: 3 }],
    ["images/wrist_left/episode_3/frame_12.png", { kind: "frame", camera: "wrist_left", episodeIndex: 3 }],
    ["videos/top-cam/episode-000007.mp4", { kind: "video", camera: "top-cam", episodeIndex: 7 }],
    ["data/episode-000003.jsonl", { kind: "data", camera: null, episodeIndex: 3 }],
    ["data/episode_3.parquet", { kind: "data", camera: null, episodeIndex: 3 }],
  ])("accepts %s", (name, expected) => {
    expect(parseEntryPath(name)).toEqual(expected);
  });

  it.each([
    "../images/front/episode-0/frame-0.png",
    "images/../data/episode-0.jsonl",
    "images/front/episode-0/../../../x.png",
    "/images/front/episode-0/frame-0.png",
    "images/.front/episode-0/frame-0.png",
    "images/observation.images.front/episode-0/frame-0.png",
    "images/front/episode-0/frame-0.jpg",
    "images/front/episode-0/sub/frame-0.png",
    "data/episode-0.csv",
    "data\\episode-0.jsonl",
    "gantry-manifest.json",
    "",
  ])("refuses %j", (name) => {
    expect(parseEntryPath(name)).toBeNull();
  });
});

describe("manifest checks", () => {
  const manifest = (paths: string[], size = 10) => ({ format: ARCHIVE_FORMAT as typeof ARCHIVE_FORMAT, repoId: "lab/x", episodeIndex: 2, mode: "edge" as const, files: paths.map((path) => ({ path, size, sha256: "0".repeat(64) })) });
  const expected = { repoId: "lab/x", episodeIndex: 2, maxBytes: 1000 };

  it("accepts an episode's frames and data", () => {
    expect(() => checkManifest(manifest(["images/a/episode-2/frame-0.png", "data/episode-2.jsonl"]), expected)).not.toThrow();
  });

  it("refuses another episode's files, repeats, no data file, another repo, and too much", () => {
    expect(() => checkManifest(manifest(["images/a/episode-3/frame-0.png", "data/episode-2.jsonl"]), expected)).toThrow(/belongs to episode 3/);
    expect(() => checkManifest(manifest(["data/episode-2.jsonl", "data/episode-2.jsonl"]), expected)).toThrow(/listed twice/);
    expect(() => checkManifest(manifest(["images/a/episode-2/frame-0.png"]), expected)).toThrow(/no data\/episode-<n>/);
    expect(() => checkManifest({ ...manifest(["data/episode-2.jsonl"]), repoId: "lab/y" }, expected)).toThrow(/is for lab\/y episode 2/);
    expect(() => checkManifest(manifest(["data/episode-2.jsonl"], 2000), expected)).toThrow(/EDGE_MAX_UPLOAD_BYTES/);
  });
});

describe("free disk", () => {
  it("refuses an upload that would leave less than the minimum, saying how much is free", async () => {
    const dir = os.tmpdir();
    const free = await freeDiskBytes(dir);
    expect(free).toBeGreaterThan(0);
    expect((await checkUploadDisk({ dir, minFreeBytes: 0, incomingBytes: 1000 })).isRefused).toBe(false);
    // Other tests free space while this runs; an upload as big as the disk's free space, with that
    // much again as the minimum, is refused unless the free space doubles in between.
    const verdict = await checkUploadDisk({ dir, minFreeBytes: free, incomingBytes: free });
    expect(verdict.isRefused).toBe(true);
    expect(verdict.message).toMatch(/nearly full: [\d.]+ [KMGT]?B free.*EDGE_MIN_FREE_DISK_BYTES/);
  });
});
