import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test } from "@playwright/test";
import type { ChildProcess } from "node:child_process";
import { buildAgent, recordEpisode, runAgent } from "../agent/test-helpers";
import { signUp, unique } from "./helpers";

// The edge pipeline as a lab uses it: make a token in the portal, log the agent in from a
// terminal, upload a recorded episode over tus to the real portal, and follow it through the
// worker's encoding until the dataset has it; then `gantry-agent watch` sends each episode as
// its recording finishes, the dataset page shows it encoding while the next one records, and
// the episode plays.

test("an episode recorded at the edge goes from the agent into a dataset", async ({ page, request, baseURL }) => {
  test.setTimeout(600_000);
  buildAgent();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-agent-"));
  const recording = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-recording-"));
  recordEpisode(recording, { episode: 0, frames: 45, size: "320x240", cameraFolder: (c) => `observation.images.${c}` });
  const repoId = `lab/pick-${unique()}`;

  await signUp(page, { name: "Edgar Edge", email: `edge-${unique()}@example.test`, password: "a long enough password" });
  let token = "";
  await test.step("make an API token with the write scope", async () => {
    await page.goto("/settings/tokens");
    await page.getByLabel("Name").fill("robot laptop");
    await page.getByLabel(/^write/).check();
    await page.getByRole("button", { name: "Create token" }).click();
    token = await page.getByLabel("New API token").inputValue();
  });

  await test.step("log the agent in and upload the episode", async () => {
    const login = await runAgent(["login", "--portal", baseURL!, "--token", token], { home });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain("Logged in to");
    const upload = await runAgent(["upload", recording, "--dataset", repoId, "--task", "pick the cube"], { home });
    expect(upload.code, upload.stderr).toBe(0);
    expect(upload.stderr).toMatch(/episode 0: uploading: 91 files/);
    expect(upload.stderr).toMatch(/queued for encoding/);
  });

  await test.step("the portal encodes it; the earlier status endpoint follows along", async () => {
    await expect
      .poll(async () => (await (await request.get(`/edge/status/${repoId}`, { headers: { authorization: `Bearer ${token}` } })).json()).status, { timeout: 150_000, intervals: [1000] })
      .toBe("COMPLETED");
    const status = await runAgent(["status", repoId], { home });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`${repoId}: COMPLETED 100% — 1/1 episodes encoded`);
  });

  await test.step("watch: each episode goes up as its recording finishes, and is encoded while the next records", async () => {
    const watched = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-watched-"));
    const watchRepo = `lab/watch-${unique()}`;
    let watcher: ChildProcess | null = null;
    const done = runAgent(["watch", watched, "--dataset", watchRepo, "--task", "stack the cubes", "--quiet", "1"], { home, onSpawn: (c) => (watcher = c) });
    try {
      // A longer episode first (30 s), so its encoding can be seen on the page (a camera keeps its frame size).
      recordEpisode(watched, { episode: 0, frames: 900, size: "640x480" });
      // (A kept-alive connection may have been closed while the frames were written: ask again.)
      await expect.poll(async () => (await request.get(`/edge/status/${watchRepo}`, { headers: { authorization: `Bearer ${token}` } }).catch(() => null))?.status(), { timeout: 60_000 }).toBe(200);
      await page.goto("/datasets");
      await page.locator(`[data-dataset="${watchRepo}"]`).getByRole("link", { name: watchRepo }).click();
      await expect(page.getByRole("heading", { level: 1 })).toHaveText(watchRepo);
      const first = page.locator('[data-episode="0"]');
      await expect(first.getByText("encoding")).toBeVisible();
      recordEpisode(watched, { episode: 1, frames: 30, size: "640x480" });
      await expect
        .poll(async () => (await (await request.get(`/edge/status/${watchRepo}`, { headers: { authorization: `Bearer ${token}` } }).catch(() => null))?.json()) ?? null, { timeout: 300_000, intervals: [2000] })
        .toMatchObject({ status: "COMPLETED", episodes: { total: 2, encoded: 2 } });
      await expect(first.getByText("in dataset")).toBeVisible();
      // The page follows episodes while any is encoding; one that arrived after that shows on a reload.
      await page.reload();
      const second = page.locator('[data-episode="1"]');
      await expect(second.getByText("in dataset")).toBeVisible();
      await expect(second).toContainText("stack the cubes");
      await expect(second).toContainText("front, wrist");
    } catch (error) {
      watcher!.kill("SIGTERM");
      console.error(`gantry-agent watch said:\n${(await done).stderr}`);
      throw error;
    } finally {
      watcher!.kill("SIGTERM");
    }
    const run = await done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr.match(/queued for encoding/g)).toHaveLength(2);

    await page.locator('[data-episode="1"]').getByRole("link", { name: "#1" }).click();
    const videos = page.getByTestId("episode-video");
    await expect(videos).toHaveCount(2);
    await expect.poll(async () => videos.evaluateAll((vs) => (vs as HTMLVideoElement[]).every((v) => v.readyState >= 2)), { timeout: 30_000 }).toBe(true);
    await page.getByRole("button", { name: "Play" }).click();
    await expect.poll(async () => videos.evaluateAll((vs) => Math.min(...(vs as HTMLVideoElement[]).map((v) => v.currentTime))), { timeout: 10_000 }).toBeGreaterThan(0.2);
  });
});
