import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { encodeEpisodeLocally } from "./encode";
import { scanRecording } from "./layout";
import { recordEpisode, tempDir } from "./test-helpers";

// Mode 0 encodes with the machine's ffmpeg into the agent's folder. An upload killed after the
// encoding and run again takes the same videos (so its fingerprint, and its resume, hold).

describe("encoding an episode on the edge", () => {
  it("takes the video an earlier run made, and encodes again only when a frame is newer", async () => {
    const recording = tempDir("recording");
    recordEpisode(recording, { episode: 0, frames: 6, cameras: ["front"] });
    const outRoot = tempDir("encoded");
    const episode = () => scanRecording(recording).get(0)!;
    const encoded: string[] = [];
    const first = await encodeEpisodeLocally(episode(), { outRoot, fps: 30, onCamera: (c) => encoded.push(c) });
    const video = first.videos.get("front")!;
    expect(video.size).toBeGreaterThan(0);
    expect(encoded).toEqual(["front"]);

    const again = await encodeEpisodeLocally(episode(), { outRoot, fps: 30, onCamera: (c) => encoded.push(c) });
    expect(again.videos.get("front")).toEqual(video);
    expect(encoded).toEqual(["front"]);

    // A frame rewritten after the video: the video is made again.
    const frame = path.join(recording, "images", "front", "episode-000000", "frame-000000.png");
    const later = new Date(video.mtimeMs + 5_000);
    fs.utimesSync(frame, later, later);
    const remade = await encodeEpisodeLocally(episode(), { outRoot, fps: 30, onCamera: (c) => encoded.push(c) });
    expect(encoded).toEqual(["front", "front"]);
    expect(remade.videos.get("front")!.mtimeMs).toBeGreaterThanOrEqual(video.mtimeMs);
  });
});
