import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { runStandInTrainer } from "../tests/helpers/capture-trainer";
import { differingPixels, drawnPixels } from "../tests/helpers/png";
import { canvasPng, signUp, unique } from "./helpers";

// A capture from the browser's side: a session is started on the Captures page, frames are
// posted with an API token (as a camera client does), the stand-in trainer claims the session
// and pushes snapshots, and the 3D view (Spark through React Three Fiber, in Chromium's
// software WebGL) draws each new snapshot; joint angles posted the earlier way move the twin.
// Pixels are compared, not just the page's text.

test("a capture's scene and twin update in the 3D view as the trainer pushes and joints are posted", async ({ page, baseURL }) => {
  test.setTimeout(240_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-capture-"));
  const jpeg = path.join(dir, "frame.jpg");
  execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x480", "-frames:v", "1", jpeg]);
  const frame = fs.readFileSync(jpeg);
  await signUp(page, { name: "Cai Capture", email: `capture-${unique()}@example.test`, password: "a long enough password" });
  await page.goto("/settings/tokens");
  await page.getByLabel("Name").fill("camera");
  await page.getByLabel(/^write/).check();
  await page.getByRole("button", { name: "Create token" }).click();
  const token = await page.getByLabel("New API token").inputValue();
  const auth = { authorization: `Bearer ${token}` };

  await page.goto("/captures");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Captures");
  await page.getByLabel("Name").fill("Workbench");
  await page.getByLabel("Frames per chunk").fill("5");
  await page.getByRole("button", { name: "Start capturing" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Workbench");
  const sessionId = new URL(page.url()).pathname.split("/").at(-1)!;

  const trainer = new AbortController();
  const training = runStandInTrainer({ portal: baseURL!, token, sessionId, every: 5, format: "ply", signal: trainer.signal }).catch((error: unknown) => {
    if (!trainer.signal.aborted) throw error;
  });
  const postFrames = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const response = await page.request.post(`/api/captures/${sessionId}/frames`, { headers: { ...auth, "content-type": "image/jpeg" }, data: frame });
      expect(response.status(), await response.text()).toBe(201);
    }
  };
  try {
    const scene = page.getByTestId("scene");
    const canvas = scene.locator("canvas");
    await test.step("the twin stands in the empty scene, posed by hand with the sliders", async () => {
      await expect(scene).toHaveAttribute("data-twin-ready", "yes", { timeout: 60_000 });
      await expect.poll(async () => drawnPixels(await canvasPng(canvas)), { timeout: 20_000 }).toBeGreaterThan(2000);
      const before = await canvasPng(canvas);
      await page.getByLabel("shoulder_lift angle").fill("1.2");
      await expect.poll(async () => differingPixels(before, await canvasPng(canvas)), { timeout: 10_000 }).toBeGreaterThan(500);
    });

    await test.step("the trainer's first snapshot is drawn once it has loaded", async () => {
      await page.getByRole("checkbox", { name: "Twin" }).uncheck();
      const empty = await canvasPng(canvas);
      await postFrames(5);
      await expect(page.locator('[data-field="snapshot-count"]')).toHaveText("1 snapshots", { timeout: 30_000 });
      await expect(page.locator('[data-field="frames"]')).toHaveText("5 frames");
      await expect(scene).toHaveAttribute("data-splats", /^\d+$/, { timeout: 30_000 });
      await expect.poll(async () => differingPixels(empty, await canvasPng(canvas)), { timeout: 20_000 }).toBeGreaterThan(50);
    });

    await test.step("a newer snapshot replaces it; the timeline steps back to the first", async () => {
      const first = await canvasPng(canvas);
      const firstSplats = await scene.getAttribute("data-splats");
      await postFrames(5);
      await expect(page.locator('[data-field="snapshot-count"]')).toHaveText("2 snapshots", { timeout: 30_000 });
      await expect(scene).not.toHaveAttribute("data-splats", firstSplats!, { timeout: 30_000 });
      await expect.poll(async () => differingPixels(first, await canvasPng(canvas)), { timeout: 20_000 }).toBeGreaterThan(50);
      await page.getByLabel("Snapshot timeline").fill("0");
      await expect(scene).toHaveAttribute("data-splats", firstSplats!, { timeout: 30_000 });
      await page.getByRole("button", { name: "Follow the newest" }).click();
    });

    await test.step("joint angles posted the earlier way move the twin", async () => {
      await page.getByRole("checkbox", { name: "Twin" }).check();
      await expect(scene).toHaveAttribute("data-twin-ready", "yes", { timeout: 60_000 });
      const post = (angles: number[]) => page.request.post("/update-joint-angles", { headers: auth, data: { joint_angles: angles } });
      const first = await post([0, 0, 0, 0, 0, 0]);
      expect(first.status(), await first.text()).toBe(200);
      expect(await first.json()).toMatchObject({ success: true, joint_angles: [0, 0, 0, 0, 0, 0] });
      await expect(page.locator('[data-joint="shoulder_pan"] [data-field="angle"]')).toHaveText("0.00", { timeout: 10_000 });
      await page.waitForTimeout(300);
      const before = await canvasPng(canvas);
      await post([1.2, -0.8, 1.0, 0.5, 0, 1.0]);
      await expect(page.locator('[data-joint="shoulder_pan"] [data-field="angle"]')).toHaveText("1.20", { timeout: 10_000 });
      await expect.poll(async () => differingPixels(before, await canvasPng(canvas)), { timeout: 10_000 }).toBeGreaterThan(500);
    });
  } finally {
    trainer.abort();
    await training;
  }
});
