import fs from "node:fs";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { signUp, unique } from "./helpers";

// Scoring a dataset Gantry does not hold, as a person does: the real SO-101 recording sits in
// a folder on the server; it is scored from the datasets page, followed to its report, and the
// report offers nothing that would need the dataset to be in Gantry. A folder outside the
// import roots is refused with a message that says so.

const FIXTURE = path.resolve("tests/fixtures/so101-record-v3");

test("scores a folder on the server from the datasets page and reads its report", async ({ page }) => {
  test.setTimeout(150_000);
  const folder = path.join(process.env.E2E_IMPORT_ROOT!, `so101-${unique()}`);
  fs.mkdirSync(path.dirname(folder), { recursive: true });
  fs.cpSync(FIXTURE, folder, { recursive: true });

  await signUp(page, { name: "Sam Scorer", email: `scoring-${unique()}@example.test`, password: "a long enough password" });
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Datasets", exact: true }).click();

  await test.step("a folder outside the import roots is refused, saying why", async () => {
    await page.getByRole("button", { name: "Score a dataset that is not in Gantry" }).click();
    await page.getByLabel("Folder").fill(FIXTURE);
    await page.getByRole("button", { name: "Score dataset" }).click();
    await expect(page.getByTestId("external-scoring-form").getByRole("alert")).toContainText("is outside the folders datasets may be imported from");
  });

  await test.step("a folder inside them is scored, with progress, to a report", async () => {
    await page.getByLabel("Folder").fill(folder);
    // The recording's videos were left out: the numeric metrics and the missing cameras are what it has.
    await page.getByLabel("Visual diversity (v)").uncheck();
    await page.getByLabel("Frames per episode").fill("2");
    await page.getByRole("button", { name: "Score dataset" }).click();
    const row = page.getByTestId("external-scorings").locator("li").filter({ hasText: folder });
    await expect(row).toBeVisible();
    await expect(row.getByText("succeeded")).toBeVisible({ timeout: 90_000 });
    await expect(row).toContainText(/Overall \d\.\d\d/);
    await expect(row).toContainText("files ");
    await row.getByRole("link", { name: "report" }).click();
  });

  await test.step("the report names the folder and the version scored, and offers no action on a dataset Gantry does not hold", async () => {
    await expect(page.getByRole("heading", { level: 1 })).toHaveText(`Quality of ${fs.realpathSync(folder)}`);
    await expect(page.getByTestId("evaluation-source")).toContainText("not in Gantry");
    await expect(page.getByTestId("overall-score")).toHaveText(/\d\.\d\d/);
    await expect(page.getByText("Trajectory quality (t)")).toBeVisible();
    await expect(page.getByTestId("episode-findings").locator("tbody tr")).toHaveCount(4);
    await expect(page.getByTestId("episode-findings")).toContainText("missing-video");
    await expect(page.getByRole("button", { name: "Exclude flagged episodes" })).toHaveCount(0);
    await expect(page.getByTestId("compare-evaluations")).toHaveCount(0);
  });
  fs.rmSync(folder, { recursive: true, force: true });
});
