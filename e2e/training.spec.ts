import path from "node:path";
import { expect, test } from "@playwright/test";
import { startSshdRig, type SshdRig } from "../tests/helpers/sshd-rig";
import { makeGpuHost } from "../tests/helpers/training";
import { importDatasetArchive, signUp, unique } from "./helpers";

// Training as a person does it: add a GPU host (an OpenSSH sshd with the stand-in
// lerobot-train and nvidia-smi on its PATH), test it, press Train on a dataset, watch the run's
// log and loss chart, and open the checkpoint it registered.

const FIXTURE = path.resolve("tests/fixtures/so101-record-v3");
let rig: SshdRig;

test.beforeAll(async () => {
  rig = await startSshdRig(1, { names: [`gpu-${unique()}`] });
  makeGpuHost(rig.devices[0]);
});
test.afterAll(async () => {
  await rig?.stop();
});

test("Train from a dataset page to a registered checkpoint, with the loss chart drawing", async ({ page }) => {
  test.setTimeout(240_000);
  const gpu = rig.devices[0];
  await signUp(page, { name: "Tara Trainer", email: `training-${unique()}@example.test`, password: "a long enough password" });

  const repoId = `lab/train-${unique()}`;
  await test.step("import a dataset to train on", async () => {
    await importDatasetArchive(page, { folder: FIXTURE, repoId, episodes: 4 });
  });
  const datasetUrl = page.url();

  await test.step("add the GPU host as a training target and test it", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Training" }).click();
    await expect(page.getByText("No training target yet")).toBeVisible();
    await page.getByRole("link", { name: /^Targets/ }).click();
    await page.getByRole("button", { name: "Add target" }).click();
    const form = page.getByRole("form", { name: "Add training target" });
    await form.getByLabel("Name").fill("lab-4090");
    await form.getByLabel("Host").fill(gpu.host);
    await form.getByLabel("Port", { exact: true }).fill(String(gpu.port));
    await form.getByLabel("User").fill(gpu.user);
    await form.getByLabel("Private key").fill(rig.privateKey);
    await form.getByLabel("Work directory").fill(path.join(gpu.dir, "work"));
    await form.getByLabel(/default target/).check();
    await form.getByRole("button", { name: "Add target" }).click();
    const card = page.locator('[data-target="lab-4090"]');
    await expect(card).toBeVisible();
    await card.getByRole("button", { name: "Test target" }).click();
    await expect(card.getByTestId("target-facts")).toContainText("NVIDIA GeForce RTX 4090", { timeout: 30_000 });
    await expect(card).toContainText("Ready to train.");
    await expect(card).toContainText(gpu.fingerprint());
  });

  await test.step("press Train on the dataset and start a short run", async () => {
    await page.goto(datasetUrl);
    await page.getByRole("link", { name: "Train", exact: true }).click();
    const form = page.getByRole("form", { name: "New training run" });
    await expect(form.getByLabel("Dataset")).toHaveValue(/.+/);
    await form.getByLabel("Policy type").fill("act");
    await form.getByLabel("Steps", { exact: true }).fill("60");
    await form.getByLabel("Save every (steps)").fill("20");
    await form.getByLabel("Log every (steps)").fill("10");
    await form.getByRole("button", { name: "Start training" }).click();
    await expect(page).toHaveURL(/\/training\/runs\//);
  });

  await test.step("watch it train: log, loss chart, then the registered checkpoint", async () => {
    await expect(page.getByTestId("run-log")).toContainText("step:10 ", { timeout: 90_000 });
    await expect(page.getByText("succeeded", { exact: true })).toBeVisible({ timeout: 90_000 });
    await expect(page.getByTestId("run-step")).toHaveText("step 60 of 60");
    await expect(page.getByTestId("run-log")).toContainText("step:60 smpl:480");
    // The chart draws on a canvas: some of its pixels are not the background.
    const canvas = page.getByTestId("loss-chart").locator("canvas");
    await expect(canvas).toBeVisible();
    const drawn = await canvas.evaluate((c: HTMLCanvasElement) => {
      const data = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
      let painted = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
      return painted;
    });
    expect(drawn).toBeGreaterThan(100);
    await expect(page.getByTestId("loss-chart")).toContainText("loss");
    await page.getByTestId("checkpoint-link").click();
    await expect(page.getByText(/LeRobot checkpoint · run .* on lab\/train-/)).toBeVisible();
  });
});
