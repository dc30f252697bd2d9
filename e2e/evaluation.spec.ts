import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { writeV3Dataset } from "../tests/helpers/lerobot-datasets";
import { expectChartDrawn, importDatasetArchive, recordCanvasText, signUp, unique } from "./helpers";

// Dataset scoring as a person uses it to clean a dataset: a recording with one episode whose
// shoulder encoder stuck is imported, scored, the stuck episode found in the report, and
// "Exclude flagged episodes" makes a new dataset without it, which scores clean and compares
// with the one it came from.

test("Evaluate finds the episode with a stuck joint, and excluding flagged episodes makes a clean dataset beside it", async ({ page }) => {
  test.setTimeout(240_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-eval-"));
  const name = `stuck-${unique()}`;
  await writeV3Dataset(path.join(dir, name), { episodes: 5, frames: 80, fps: 10, frozenJoint: { episode: 3, joint: 1 }, gripperOpening: true });
  const repoId = `lab/${name}`;
  await recordCanvasText(page);
  await signUp(page, { name: "Eve Evaluation", email: `evaluation-${unique()}@example.test`, password: "a long enough password" });

  await test.step("import the recording and score it", async () => {
    await importDatasetArchive(page, { folder: path.join(dir, name), repoId, episodes: 5 });
    await expect(page.getByTestId("import-job")).toHaveCount(0, { timeout: 60_000 });
    const quality = page.getByTestId("dataset-quality");
    await quality.getByRole("button", { name: "Evaluate" }).click();
    await expect(quality.getByTestId("dataset-score")).toHaveText(/^[01]\.\d\d$/, { timeout: 90_000 });
    await quality.getByRole("link", { name: "report" }).click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText(`Quality of ${repoId}`);
  });

  await test.step("the report draws its plots", async () => {
    // Each joint is named on the axis.
    await expectChartDrawn(page, page.getByTestId("joint-ranges-chart"), ["joint", "value", "shoulder_pan.pos", "gripper.pos"]);
    await expectChartDrawn(page, page.getByTestId("episode-lengths-chart"), ["episode", "frames"], { flat: true }); // all 80 frames
    await expectChartDrawn(page, page.getByTestId("intervals-chart"), ["interval (ms)", "frames"], { flat: true }); // all 100 ms
  });

  await test.step("the report names the stuck joint's episode, and only it", async () => {
    const findings = page.getByTestId("episode-findings");
    await expect(findings.locator("tbody tr")).toHaveCount(5);
    await page.getByLabel("Show episodes with").selectOption({ label: "frozen-joint (1)" });
    await expect(findings.locator("tbody tr")).toHaveCount(1);
    await expect(findings.locator("tbody tr td").first()).toHaveText("3");
    await expect(findings).toContainText("shoulder_lift");
  });

  await test.step("exclude flagged episodes: a new dataset of the other four, scored clean", async () => {
    await expect(page.getByText("(1 flagged are left out)", { exact: false })).toBeVisible();
    await page.getByLabel("New repo id").fill(`${repoId}-clean`);
    await page.getByRole("button", { name: "Exclude flagged episodes" }).click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText(`${repoId}-clean`, { timeout: 60_000 });
    await expect(page.locator("[data-episode]")).toHaveCount(4);
    const quality = page.getByTestId("dataset-quality");
    await quality.getByRole("button", { name: "Evaluate" }).click();
    await expect(quality.getByTestId("dataset-score")).toHaveText(/^[01]\.\d\d$/, { timeout: 90_000 });
    await quality.getByRole("link", { name: "report" }).click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText(`Quality of ${repoId}-clean`);
    await expect(page.getByLabel("Show episodes with")).not.toContainText("frozen-joint");
    // Beside the scoring it came from: five episodes (one flagged) before, four (none) after.
    const compare = page.getByTestId("compare-evaluations");
    await expect(compare.getByLabel("Compare with")).toHaveValue(/.+/);
    await expect(compare.locator("tr", { hasText: "Episodes (flagged)" })).toContainText("5 (1)");
    await expect(compare.locator("tr", { hasText: "Episodes (flagged)" })).toContainText("4 (0)");
    // The source dataset is untouched: all five episodes are still there.
    await page.goto("/datasets");
    await expect(page.getByRole("link", { name: repoId, exact: true })).toBeVisible();
  });
});
