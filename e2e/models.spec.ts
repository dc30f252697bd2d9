import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { buildGarbage, buildMlp } from "../tests/helpers/onnx-models";
import { signUp, unique } from "./helpers";

// The registry as a person uses it: make a model, upload an ONNX file, fetch another from the
// hub stand-in, and read each validation report; a file that is not ONNX is refused clearly.

test("registers models and shows their validation reports", async ({ page }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-models-"));
  fs.writeFileSync(path.join(dir, "mlp.onnx"), buildMlp());
  fs.writeFileSync(path.join(dir, "broken.onnx"), buildGarbage());

  await signUp(page, { name: "Mia Models", email: `models-${unique()}@example.test`, password: "a long enough password" });
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Models", exact: true }).click();
  await page.getByRole("button", { name: "New model" }).click();
  await page.getByLabel("Model name").fill("so101 pick-cube");
  await page.getByRole("button", { name: "Create model" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("so101 pick-cube");

  await test.step("upload an ONNX file and watch it validate", async () => {
    await page.getByLabel("ONNX file").setInputFiles(path.join(dir, "mlp.onnx"));
    await page.getByLabel("Dimension values").fill("batch=4");
    await page.getByRole("button", { name: "Add version" }).click();
    const v1 = page.locator('[data-version="1"]');
    await expect(v1.getByText("ready", { exact: true })).toBeVisible({ timeout: 60_000 });
    const report = v1.getByTestId("validation-report");
    await expect(report).toContainText("Inputs");
    await expect(report.getByRole("table", { name: "Inputs" })).toContainText("batch");
    await expect(report).toContainText("batch=4");
    await expect(report.getByTestId("p50")).toHaveText(/ms$/);
  });

  await test.step("fetch a version from the model hub", async () => {
    await page.getByRole("tab", { name: "From a model hub" }).click();
    await page.getByLabel("Repository", { exact: true }).fill("lerobot/so101-conv");
    await page.getByLabel("File in the repository").fill("model.onnx");
    await page.getByRole("button", { name: "Add version" }).click();
    const v2 = page.locator('[data-version="2"]');
    await expect(v2.getByText("ready", { exact: true })).toBeVisible({ timeout: 60_000 });
    await expect(v2).toContainText("lerobot/so101-conv@main");
    await expect(v2.getByRole("table", { name: "Inputs" })).toContainText("16");
  });

  await test.step("a file that is not ONNX is refused with a reason", async () => {
    await page.getByRole("tab", { name: "Upload a file" }).click();
    await page.getByLabel("ONNX file").setInputFiles(path.join(dir, "broken.onnx"));
    await page.getByRole("button", { name: "Add version" }).click();
    const v3 = page.locator('[data-version="3"]');
    await expect(v3.getByText("invalid", { exact: true })).toBeVisible({ timeout: 60_000 });
    await expect(v3.getByRole("alert").first()).toContainText(/not an ONNX model/i);
  });

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Models", exact: true }).click();
  await expect(page.locator('[data-model="so101 pick-cube"]')).toContainText("3 versions");
  fs.rmSync(dir, { recursive: true, force: true });
});
