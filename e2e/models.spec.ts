import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { buildGarbage, buildMlp, runMlpInJs } from "../tests/helpers/onnx-models";
import { signUp, unique } from "./helpers";

// The registry as a person uses it: make a model, upload an ONNX file, fetch another from the
// hub stand-in, and read each validation report; a file that is not ONNX is refused clearly.

test("registers models and shows their validation reports", async ({ page }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-models-"));
  fs.writeFileSync(path.join(dir, "mlp.onnx"), buildMlp());
  fs.writeFileSync(path.join(dir, "broken.onnx"), buildGarbage());
  const x = [[0.1, 0.2, 0.3, 0.4], [1, -1, 0.5, 2]];
  fs.writeFileSync(path.join(dir, "vector.json"), JSON.stringify({ inputs: { x }, outputs: { y: runMlpInJs(x) } }));
  // The same vector as .npy files named after their tensors: a little-endian float32 array each.
  const npy = (shape: number[], values: number[]) => {
    let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
    header += " ".repeat(63 - ((10 + header.length) % 64)) + "\n";
    const head = Buffer.alloc(10);
    head.write("\x93NUMPY", 0, "latin1");
    head.writeUInt8(1, 6);
    head.writeUInt16LE(header.length, 8);
    return Buffer.concat([head, Buffer.from(header, "latin1"), Buffer.from(Float32Array.from(values).buffer)]);
  };
  fs.writeFileSync(path.join(dir, "x.npy"), npy([2, 4], x.flat()));
  fs.writeFileSync(path.join(dir, "y.npy"), npy([2, 3], runMlpInJs(x).flat()));

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

  await test.step("validate again with a test vector, as JSON and as .npy files", async () => {
    const v1 = page.locator('[data-version="1"]');
    await v1.getByRole("button", { name: "Validate again" }).click();
    await v1.getByLabel("Test vector (JSON)").setInputFiles(path.join(dir, "vector.json"));
    await v1.getByLabel("Tolerance").fill("0.0001");
    await v1.getByRole("button", { name: "Validate", exact: true }).click();
    await expect(v1.getByTestId("validation-report")).toContainText(/max \|diff\| \d\.\d\de-\d+/, { timeout: 60_000 });
    await expect(v1.getByText("ready", { exact: true })).toBeVisible({ timeout: 60_000 });

    await v1.getByRole("button", { name: "Validate again" }).click();
    await v1.getByLabel("Or inputs (.npy, named after each input)").setInputFiles(path.join(dir, "x.npy"));
    await v1.getByLabel("And expected outputs (.npy)").setInputFiles(path.join(dir, "y.npy"));
    await v1.getByRole("button", { name: "Validate", exact: true }).click();
    await expect(v1.getByRole("form")).toHaveCount(0);
    // The new report, not the JSON vector's still on the page: no tolerance was given this time.
    await expect(v1.getByTestId("test-vector")).toHaveText(/^passed · max \|diff\| \d\.\d\de-\d+$/, { timeout: 60_000 });
    await expect(v1.getByText("ready", { exact: true })).toBeVisible({ timeout: 60_000 });
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

  await test.step("rename the model and describe it; its versions stay as they were", async () => {
    await page.getByRole("button", { name: "Edit" }).click();
    await page.getByLabel("Model name").fill("so101 pick-cube v2");
    await page.getByLabel("Description").fill("Picks the red cube");
    await page.getByRole("button", { name: "Save" }).click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("so101 pick-cube v2");
    await expect(page.getByText("Picks the red cube")).toBeVisible();
    await expect(page.locator('[data-version="1"]').getByText("ready", { exact: true })).toBeVisible();
  });

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Models", exact: true }).click();
  await expect(page.locator('[data-model="so101 pick-cube v2"]')).toContainText("3 versions");
  fs.rmSync(dir, { recursive: true, force: true });
});
