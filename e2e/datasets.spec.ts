import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { buildAgent, recordEpisode, runAgent } from "../agent/test-helpers";
import { signUp, unique } from "./helpers";

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

  await test.step("both cameras play in sync; scrubbing a joint plot seeks them", async () => {
    await page.locator('[data-episode="0"]').getByRole("link", { name: "#0" }).click();
    await expect(page.getByTestId("episode-video")).toHaveCount(2);
    await expect.poll(async () => (await videoState(page)).every((v) => v.ready >= 2 && Math.abs(v.duration - 2) < 0.1), { timeout: 30_000 }).toBe(true);
    const plots = page.locator("[data-joint]");
    // The recorder sent two joints without names: they are numbered as LeRobot does.
    await expect(plots).toHaveCount(2);
    await expect(plots.nth(1)).toHaveAttribute("data-joint", "motor_1");
    await expect(plots.first().locator('[data-series="state"]')).toHaveAttribute("d", /^M0\.0,/);

    await page.getByRole("button", { name: "Play" }).click();
    await expect.poll(async () => (await videoState(page))[0].t, { timeout: 10_000 }).toBeGreaterThan(0.5);
    await page.getByRole("button", { name: "Pause" }).click();
    const [a, b] = await videoState(page);
    expect(Math.abs(a.t - b.t)).toBeLessThan(2 / 30);

    const svg = plots.nth(1).locator("svg");
    const box = (await svg.boundingBox())!;
    await page.mouse.click(box.x + box.width * 0.25, box.y + box.height / 2);
    await expect(page.getByTestId("episode-clock")).toContainText(/frame 1[45] \/ 60/);
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
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-fixture-"));
    const archive = path.join(dir, "so101-record-v3.tar.gz");
    execFileSync("tar", ["-czf", archive, "-C", path.dirname(FIXTURE), path.basename(FIXTURE)]);
    await page.goto("/datasets");
    await page.getByRole("button", { name: "Import dataset" }).click();
    await page.getByLabel("Repo id").fill(importedId);
    await page.getByLabel("Archive").setInputFiles(archive);
    await page.getByRole("button", { name: "Import dataset" }).last().click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText(importedId, { timeout: 30_000 });
    await expect(page.locator("[data-episode]")).toHaveCount(4, { timeout: 60_000 });
    await expect(page.getByText("This dataset's videos are missing")).toBeVisible();
    await expect(page.getByText(/came without observation\.images\.front and observation\.images\.top/)).toBeVisible();
    await expect(page.getByText("1492 frames").first()).toBeVisible();
    await expect(page.locator('[data-task="Pick the orange cube and place it in the box"]')).toContainText("4 episodes");

    await page.locator('[data-episode="2"]').getByRole("link", { name: "#2" }).click();
    await expect(page.getByText("Videos missing", { exact: true })).toBeVisible();
    await expect(page.getByTestId("episode-video")).toHaveCount(0);
    await expect(page.locator("[data-joint]")).toHaveCount(6);
    await expect(page.locator('[data-joint="gripper.pos"]')).toBeVisible();
    await expect(page.getByTestId("episode-clock")).toContainText("frame 0 / 372");
    await page.getByRole("button", { name: "Play" }).click();
    await expect.poll(async () => (await page.getByTestId("episode-clock").textContent()) ?? "", { timeout: 5000 }).not.toContain("frame 0 /");
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
