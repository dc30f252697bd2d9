import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { expect, test } from "@playwright/test";
import * as ort from "onnxruntime-node";
import { buildMlp } from "../tests/helpers/onnx-models";
import { signUp, unique } from "./helpers";

// The whole way from an ONNX file to a live endpoint, as a person takes it: upload, read the
// validation report, walk the five-step wizard, watch the six deploy steps, reload, try it in
// the page, then call it with the curl and Python examples the page shows — whose numbers must
// equal a raw onnxruntime session's.

const run = promisify(execFile);

test("deploys a model through the wizard and calls the endpoint", async ({ page }) => {
  test.setTimeout(240_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-endpoints-"));
  const modelBytes = buildMlp();
  fs.writeFileSync(path.join(dir, "policy.onnx"), modelBytes);
  // A LeRobot-style stats.json for the input x: identity normalisation, so answers stay comparable.
  fs.writeFileSync(path.join(dir, "stats.json"), JSON.stringify({ x: { mean: [0, 0, 0, 0], std: [1, 1, 1, 1], min: [0, 0, 0, 0], max: [1, 1, 1, 1] } }));

  await signUp(page, { name: "Emil Endpoints", email: `endpoints-${unique()}@example.test`, password: "a long enough password" });

  await test.step("upload a model and see its validation report", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Models", exact: true }).click();
    await page.getByRole("button", { name: "New model" }).click();
    await page.getByLabel("Model name").fill("SO-101 pick cube");
    await page.getByRole("button", { name: "Create model" }).click();
    await page.getByLabel("ONNX file").setInputFiles(path.join(dir, "policy.onnx"));
    await page.getByRole("button", { name: "Add version" }).click();
    const v1 = page.locator('[data-version="1"]');
    await expect(v1.getByText("ready", { exact: true })).toBeVisible({ timeout: 60_000 });
    await expect(v1.getByRole("table", { name: "Inputs" })).toContainText("batch");
    await v1.getByRole("link", { name: "Deploy" }).click();
  });

  await test.step("walk the five steps", async () => {
    await expect(page.getByRole("heading", { name: "1. Model source" })).toBeVisible();
    await expect(page.getByLabel("Model")).toHaveValue(/.+/);
    await expect(page.getByRole("radio", { name: /Version 1/ })).toBeChecked();
    await expect(page.getByText("in  x: float32[batch, 4]")).toBeVisible();
    await page.getByRole("button", { name: "Next" }).click();

    await expect(page.getByRole("heading", { name: "2. Model type and hardware" })).toBeVisible();
    await page.getByRole("radio", { name: /Robot policy/ }).check();
    await expect(page.getByRole("radio", { name: /^cpu/i })).toBeChecked();
    await page.getByLabel("CPU threads per session").fill("0");
    await page.getByRole("button", { name: "Next" }).click();
    await expect(page.getByRole("alert").filter({ hasNotText: "Gantry" })).toContainText("CPU threads must be a whole number");
    await page.getByLabel("CPU threads per session").fill("1");
    await page.getByRole("button", { name: "Next" }).click();

    await expect(page.getByRole("heading", { name: "3. Preprocessing" })).toBeVisible();
    await page.getByLabel("LeRobot normalizer file").setInputFiles(path.join(dir, "stats.json"));
    await expect(page.getByLabel("Mean of x")).toHaveValue("0, 0, 0, 0");
    await expect(page.getByLabel("Std of x")).toHaveValue("1, 1, 1, 1");
    await page.getByRole("button", { name: "Next" }).click();

    await expect(page.getByRole("heading", { name: "4. Endpoint settings" })).toBeVisible();
    await expect(page.getByLabel("Endpoint name")).toHaveValue("so-101-pick-cube");
    await page.getByLabel("Endpoint name").fill("Pick Cube!");
    await page.getByRole("button", { name: "Next" }).click();
    await expect(page.getByRole("alert").filter({ hasNotText: "Gantry" })).toContainText("lowercase letters");
    await page.getByLabel("Endpoint name").fill("pick-cube");
    await page.getByLabel("Timeout (seconds)").fill("10");
    await page.getByLabel("Concurrency").fill("2");
    await page.getByRole("button", { name: "Next" }).click();

    const summary = page.getByRole("definition").filter({ hasText: "pick-cube" });
    await expect(summary.first()).toBeVisible();
    await expect(page.getByLabel("Summary")).toContainText("x: mean [0,0,0,0], std [1,1,1,1]");
    await expect(page.getByLabel("Summary")).toContainText("timeout 10 s");
    await page.getByRole("button", { name: "Deploy" }).click();
  });

  await test.step("watch the six steps complete live, and find them again after a reload", async () => {
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("pick-cube");
    const steps = page.getByTestId("job-steps");
    for (const label of ["Validating", "Fetching the model file", "Loading with onnxruntime", "Warming up", "Starting to serve", "Ready"]) await expect(steps).toContainText(label);
    await expect(page.getByTestId("step-6")).toHaveAttribute("data-state", "done", { timeout: 60_000 });
    await expect(page.getByTestId("job-percent")).toHaveText("100%");
    await expect(page.getByTestId("endpoint-status")).toHaveText("ready", { timeout: 15_000 });
    await page.reload();
    for (let i = 1; i <= 6; i++) await expect(page.getByTestId(`step-${i}`)).toHaveAttribute("data-state", "done");
    await expect(page.getByTestId("job-percent")).toHaveText("100%");
  });

  const x = [0.5, 0.5, 0.5, 0.5];
  const session = await ort.InferenceSession.create(modelBytes);
  const raw = Array.from((await session.run({ x: new ort.Tensor("float32", Float32Array.from(x), [1, 4]) })).y.data as Float32Array);

  await test.step("try it in the page", async () => {
    await page.getByRole("button", { name: "Send request" }).click();
    await expect(page.getByTestId("try-status")).toHaveText("200 OK");
    await expect(page.getByTestId("try-result")).toContainText('"y"');
  });

  let token = "";
  await test.step("make an API token", async () => {
    const endpointUrl = page.url();
    await page.goto("/settings/tokens");
    await page.getByLabel("Name").fill("examples");
    await page.getByRole("button", { name: "Create token" }).click();
    token = await page.getByLabel("New API token").inputValue();
    expect(token).toMatch(/^gty_/);
    await page.goto(endpointUrl);
  });

  await test.step("the curl example on the page works as shown", async () => {
    await page.getByRole("tab", { name: "curl" }).click();
    const curl = (await page.getByTestId("example-curl").textContent())!;
    expect(curl).toContain("/predict/pick-cube");
    const { stdout } = await run("bash", ["-c", curl], { env: { ...process.env, GANTRY_TOKEN: token } });
    const y = JSON.parse(stdout).outputs.y[0] as number[];
    y.forEach((v, i) => expect(v).toBeCloseTo(raw[i], 6));
  });

  await test.step("a Python OIP client on /v2/models/pick-cube/infer gets the raw session's numbers", async () => {
    await page.getByRole("tab", { name: "Python" }).click();
    const python = (await page.getByTestId("example-python").textContent())!;
    expect(python).toContain("/v2/models/pick-cube/infer");
    // The page's example, printing the numbers at full precision for the comparison.
    const script = `${python.replace(/print\(out\["name"\], .*\)/, 'print(out["name"], *out["data"])')}\n`;
    fs.writeFileSync(path.join(dir, "client.py"), script);
    const { stdout } = await run("python3", [path.join(dir, "client.py")], { env: { ...process.env, GANTRY_TOKEN: token } });
    const [name, ...values] = stdout.trim().split(/\s+/);
    expect(name).toBe("y");
    expect(values.map(Number)).toEqual(raw.map((v) => Number(v)));
  });

  await test.step("the requests show in the statistics", async () => {
    await expect.poll(async () => Number(await page.getByTestId("stats-requests").textContent()), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
  });

  fs.rmSync(dir, { recursive: true, force: true });
});
