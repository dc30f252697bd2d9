import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { differingPixels, drawnPixels } from "../tests/helpers/png";
import { expect, test, type Page } from "@playwright/test";
import { buildAgent, recordEpisode, runAgent } from "../agent/test-helpers";
import { canvasPng, expectChartDrawn, hoverPlot, importDatasetArchive, recordCanvasText, signUp, unique } from "./helpers";

// Datasets as a lab uses them: an episode uploaded by the agent is encoded by the real job and
// plays with its joints in the portal; the real LeRobot v3.0 fixture (its videos left out) is
// imported as an archive and shows its episodes and joints, saying its videos are missing, and
// is then deleted.

const FIXTURE = path.resolve("tests/fixtures/so101-record-v3");

async function videoState(page: Page) {
  return page.getByTestId("episode-video").evaluateAll((videos) => (videos as HTMLVideoElement[]).map((v) => ({ t: v.currentTime, duration: v.duration, ready: v.readyState })));
}

test("an encoded episode plays every camera in sync with its joint plots; an imported dataset shows its joints and is deleted", async ({ page, baseURL }) => {
  test.setTimeout(240_000);
  buildAgent();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-datasets-agent-"));
  const recording = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-datasets-rec-"));
  recordEpisode(recording, { episode: 0, frames: 60, size: "320x240", cameraFolder: (c) => `observation.images.${c}` });
  const repoId = `lab/arm-${unique()}`;
  await recordCanvasText(page);

  await signUp(page, { name: "Dana Datasets", email: `datasets-${unique()}@example.test`, password: "a long enough password" });
  await page.goto("/settings/tokens");
  await page.getByLabel("Name").fill("recorder");
  await page.getByLabel(/^write/).check();
  await page.getByRole("button", { name: "Create token" }).click();
  const token = await page.getByLabel("New API token").inputValue();

  await test.step("the agent uploads an episode and the portal encodes it", async () => {
    expect((await runAgent(["login", "--portal", baseURL!, "--token", token], { home })).code).toBe(0);
    const upload = await runAgent(["upload", recording, "--dataset", repoId, "--task", "Pick the red cube"], { home });
    expect(upload.code, upload.stderr).toBe(0);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Datasets", exact: true }).click();
    await page.locator(`[data-dataset="${repoId}"]`).getByRole("link", { name: repoId }).click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText(repoId);
    const row = page.locator('[data-episode="0"]');
    await expect(row.getByText("in dataset")).toBeVisible({ timeout: 150_000 });
    await expect(row).toContainText("Pick the red cube");
    await expect(row).toContainText("60");
    await expect(row).toContainText("2.0 s");
    await expect(row).toContainText("front, wrist");
  });

  await test.step("both cameras play in sync; the joint charts read out values at the cursor, and a click on one seeks", async () => {
    await page.locator('[data-episode="0"]').getByRole("link", { name: "#0" }).click();
    await expect(page.getByTestId("episode-video")).toHaveCount(2);
    await expect.poll(async () => (await videoState(page)).every((v) => v.ready >= 2 && Math.abs(v.duration - 2) < 0.1), { timeout: 30_000 }).toBe(true);
    // State and action on charts of their own; the recorder sent two joints without names, so
    // they are numbered as LeRobot does.
    await expect(page.locator('[data-joint-chart="state"]')).toHaveAttribute("data-joints", "motor_0,motor_1");
    await expect(page.locator('[data-joint-chart="action"]')).toHaveAttribute("data-joints", "motor_0,motor_1");
    const stateChart = page.getByTestId("joint-chart-state");
    await expect(stateChart.locator(".u-legend")).toContainText("motor_1");
    await expectChartDrawn(page, stateChart, ["time (s)", "value"]);
    await expectChartDrawn(page, page.getByTestId("joint-chart-action"), ["time (s)", "value"]);
    // The charts' cursors move together: the action chart reads out the instant the state chart is pointed at.
    await hoverPlot(page, stateChart, 0.5);
    await expect(page.getByTestId("joint-chart-action").locator(".u-legend .u-series").first().locator(".u-value")).toHaveText(await stateChart.locator(".u-legend .u-series").first().locator(".u-value").innerText());

    await page.getByRole("button", { name: "Play" }).click();
    await expect.poll(async () => (await videoState(page))[0].t, { timeout: 10_000 }).toBeGreaterThan(0.5);
    await page.getByRole("button", { name: "Pause" }).click();
    const [a, b] = await videoState(page);
    expect(Math.abs(a.t - b.t)).toBeLessThan(2 / 30);

    // A click on a chart seeks there (a quarter of the way: about 0.49 s of 1.97 s).
    await page.getByTestId("joint-chart-action").scrollIntoViewIfNeeded();
    const plot = (await page.getByTestId("joint-chart-action").locator(".u-over").boundingBox())!;
    await page.mouse.click(plot.x + plot.width * 0.25, plot.y + plot.height / 2);
    await expect(page.getByTestId("episode-clock")).toContainText(/frame 1[45] \/ 60/);
    // The playhead stands where the click was, on both charts.
    for (const kind of ["state", "action"]) {
      const marker = page.getByTestId(`joint-chart-${kind}`).getByTestId("chart-marker");
      await expect(marker).toBeVisible();
      const at = (await marker.boundingBox())!;
      expect(Math.abs(at.x - (plot.x + plot.width * 0.25))).toBeLessThan(plot.width * 0.02);
    }
    const seeked = await videoState(page);
    for (const v of seeked) expect(Math.abs(v.t - 0.5)).toBeLessThan(0.1);
  });

  await test.step("the dataset exports as a .tar.gz in LeRobot v3.0's layout", async () => {
    const datasetUrl = new URL(page.url()).pathname.split("/episodes/")[0];
    const datasetId = datasetUrl.split("/").at(-1)!;
    const exported = await page.request.get(`/api/datasets/${datasetId}/export`);
    expect(exported.status()).toBe(200);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-export-"));
    fs.writeFileSync(path.join(out, "d.tar.gz"), await exported.body());
    const listing = execFileSync("tar", ["-tzf", path.join(out, "d.tar.gz")]).toString().split("\n").filter(Boolean).sort();
    const name = repoId.split("/")[1];
    expect(listing).toEqual([`${name}/data/chunk-000/file-000.parquet`, `${name}/meta/episodes/chunk-000/file-000.parquet`, `${name}/meta/info.json`, `${name}/meta/stats.json`, `${name}/meta/tasks.parquet`, `${name}/videos/observation.images.front/chunk-000/file-000.mp4`, `${name}/videos/observation.images.wrist/chunk-000/file-000.mp4`]);
  });

  const importedId = `lab/so101-${unique()}`;
  await test.step("import the LeRobot v3.0 fixture as an archive: 4 episodes, joints, videos missing", async () => {
    await importDatasetArchive(page, { folder: FIXTURE, repoId: importedId, episodes: 4 });
    await expect(page.getByText("This dataset's videos are missing")).toBeVisible();
    await expect(page.getByText(/came without observation\.images\.front and observation\.images\.top/)).toBeVisible();
    await expect(page.getByText("1492 frames").first()).toBeVisible();
    await expect(page.locator('[data-task="Pick the orange cube and place it in the box"]')).toContainText("4 episodes");

    await page.locator('[data-episode="2"]').getByRole("link", { name: "#2" }).click();
    await expect(page.getByText("Videos missing", { exact: true })).toBeVisible();
    await expect(page.getByTestId("episode-video")).toHaveCount(0);
    await expect(page.locator('[data-joint-chart="state"]')).toHaveAttribute("data-joints", "shoulder_pan.pos,shoulder_lift.pos,elbow_flex.pos,wrist_flex.pos,wrist_roll.pos,gripper.pos");
    await expect(page.getByTestId("joint-chart-state").locator(".u-legend")).toContainText("gripper.pos");
    await expectChartDrawn(page, page.getByTestId("joint-chart-state"), ["time (s)", "value"]);
    await expect(page.getByTestId("episode-clock")).toContainText("frame 0 / 372");
    await page.getByRole("button", { name: "Play" }).click();
    await expect.poll(async () => (await page.getByTestId("episode-clock").textContent()) ?? "", { timeout: 5000 }).not.toContain("frame 0 /");
    await page.getByRole("button", { name: "Pause" }).click();
  });

  await test.step("the episode replays on the SO-101 twin, which moves when the episode is seeked", async () => {
    await page.getByText("3D twin", { exact: true }).scrollIntoViewIfNeeded();
    await page.getByRole("checkbox", { name: "Show" }).check();
    const scene = page.getByTestId("scene");
    await expect(scene).toHaveAttribute("data-twin-ready", "yes", { timeout: 60_000 });
    const canvas = scene.locator("canvas");
    await expect.poll(async () => drawnPixels(await canvasPng(canvas)), { timeout: 20_000 }).toBeGreaterThan(2000);
    const before = await canvasPng(canvas);
    // Seek far along: the arm is elsewhere in its task.
    await page.getByTestId("joint-chart-state").scrollIntoViewIfNeeded();
    const plot = (await page.getByTestId("joint-chart-state").locator(".u-over").boundingBox())!;
    await page.mouse.click(plot.x + plot.width * 0.8, plot.y + plot.height / 2);
    await expect(page.getByTestId("episode-clock")).not.toContainText(/frame (\d|[1-9]\d) \//);
    await expect.poll(async () => differingPixels(before, await canvasPng(canvas)), { timeout: 10_000 }).toBeGreaterThan(500);
  });

  await test.step("Evaluate scores the imported dataset; the report explains each metric, draws its plots and lists episodes by finding", async () => {
    await page.goto(new URL(page.url()).pathname.split("/episodes/")[0]);
    await expect(page.getByTestId("import-job")).toHaveCount(0, { timeout: 60_000 });
    const quality = page.getByTestId("dataset-quality");
    await expect(quality).toContainText("Not scored yet");
    await quality.getByRole("button", { name: "Evaluate" }).click();
    await expect(quality.getByTestId("dataset-score")).toHaveText(/^0\.\d\d$/, { timeout: 90_000 });
    await quality.getByRole("link", { name: "report" }).click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText(`Quality of ${importedId}`);
    await expect(page.getByTestId("overall-score")).toHaveText(/^0\.\d\d$/);
    for (const name of ["Trajectory quality", "Robot action quality", "Action consistency", "Coverage"]) await expect(page.getByText(new RegExp(`^${name} — 0\\.\\d\\d$`))).toBeVisible();
    await expect(page.getByText(/Joint units: Joints stay within/)).toBeVisible();
    // Its cameras' videos did not come with it: h is not measured, and says why, rather than scoring 0.
    await expect(page.getByText("High-fidelity vision — –")).toBeVisible();
    await expect(page.getByText(/^The dataset came without its cameras' videos \(observation\.images\.front, observation\.images\.top\)/).first()).toBeVisible();
    await expectChartDrawn(page, page.getByTestId("joint-ranges-chart"), ["joint", "value"]);
    await expectChartDrawn(page, page.getByTestId("intervals-chart"), ["interval (ms)", "frames"]);
    await expect(page.getByTestId("episode-findings").locator("tbody tr")).toHaveCount(4);
    await page.getByLabel("Show episodes with").selectOption({ label: "missing-video (4)" });
    await expect(page.getByTestId("episode-findings")).toContainText("a camera's video is missing");
    await page.getByRole("main").getByRole("link", { name: importedId }).first().click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText(importedId);
  });

  await test.step("the owner deletes the imported dataset, typing its repo id to confirm", async () => {
    await page.goto(new URL(page.url()).pathname.split("/episodes/")[0]);
    await expect(page.getByTestId("import-job")).toHaveCount(0, { timeout: 60_000 });
    await page.getByRole("button", { name: "Delete dataset" }).click();
    const dialog = page.getByRole("dialog", { name: `Delete ${importedId}?` });
    await expect(dialog.getByRole("button", { name: "Delete dataset" })).toBeDisabled();
    await dialog.getByLabel(`Type ${importedId} to confirm`).fill(importedId);
    await dialog.getByRole("button", { name: "Delete dataset" }).click();
    await expect(page.getByText(`Deleted ${importedId}`)).toBeVisible();
    await expect(page).toHaveURL(/\/datasets\?deleted=/);
    await expect(page.locator(`[data-dataset="${importedId}"]`)).toHaveCount(0);
    await expect(page.locator(`[data-dataset="${repoId}"]`)).toBeVisible();
  });
});
