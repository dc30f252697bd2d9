import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { startSshdRig, type SshdRig } from "../tests/helpers/sshd-rig";
import { buildConvNet, buildMlp } from "../tests/helpers/onnx-models";
import { expectChartDrawn, hoverPlot, recordCanvasText, signUp, unique } from "./helpers";

// The fleet as a person uses it, against three real sshd devices on this machine: add them,
// read their facts and fingerprints, roll version 1 out, then version 2 canary-first while one
// device's policy will not come up on it — that device rolls itself back, the others succeed —
// then roll the whole rollout back by hand and find every step in the audit log.

let rig: SshdRig;
const run = unique();
const names = [`arm-a-${run}`, `arm-b-${run}`, `arm-c-${run}`];

test.beforeAll(async () => {
  rig = await startSshdRig(3, { names });
});
test.afterAll(async () => {
  await rig?.stop();
});

const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

async function startRollout(page: Page, version: string, strategy: "all" | "canary") {
  await page.goto("/fleet/rollouts/new");
  await page.getByLabel("Model", { exact: true }).selectOption({ label: `fleet-policy-${run}` });
  await page.getByLabel("Version", { exact: true }).selectOption({ label: version });
  for (const name of names) await page.getByRole("checkbox", { name }).check();
  if (strategy === "all") await page.getByLabel("Strategy", { exact: true }).selectOption("all");
  else {
    await page.getByLabel("Canary devices").fill("1");
    await page.getByLabel("Then batches of").fill("2");
    await page.getByLabel("Stop when failures pass (%)").fill("50");
  }
  await page.getByRole("button", { name: "Start rollout" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toContainText(`Rollout of fleet-policy-${run} ${version}`);
}

test("adds devices, rolls out canary-first, rolls a failing device back by itself and the whole rollout back by hand", async ({ page }) => {
  test.setTimeout(480_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-fleet-"));
  const mlp = buildMlp();
  fs.writeFileSync(path.join(dir, "mlp.onnx"), mlp);
  const v1 = sha(mlp);
  const v2 = sha(buildConvNet());

  await recordCanvasText(page);
  await signUp(page, { name: "Fay Fleet", email: `fleet-${run}@example.test`, password: "a long enough password" });

  await test.step("add three devices and test each connection", async () => {
    for (const [i, d] of rig.devices.entries()) {
      await page.goto("/fleet");
      await page.getByRole("button", { name: "Add device" }).click();
      const form = page.getByRole("form", { name: "Add device" });
      await form.getByLabel("Name").fill(names[i]);
      await form.getByLabel("Host").fill(d.host);
      await form.getByLabel("Port").fill(String(d.port));
      await form.getByLabel("User").fill(d.user);
      await form.getByLabel("Private key").fill(rig.privateKey);
      await form.getByLabel("Group").fill(`bench-${run}`);
      await form.getByLabel("Model directory").fill(d.modelDir);
      await form.getByRole("button", { name: "Add device" }).click();
      const row = page.locator(`[data-device="${names[i]}"]`);
      await expect(row).toBeVisible();
      await row.getByRole("link", { name: names[i] }).click();
      await page.getByRole("button", { name: "Test connection" }).click();
      await expect(page.getByText("Host key pinned")).toBeVisible({ timeout: 30_000 });
      await expect(page.locator('[data-field="fingerprint"]')).toHaveText(d.fingerprint());
      const facts = page.getByRole("definition").filter({ hasText: /./ });
      await expect(page.locator('[data-fact="Architecture"]')).toHaveText(os.arch() === "arm64" ? "aarch64" : "x86_64");
      await expect(page.locator('[data-fact="Policy service"]')).toHaveText("failed");
      await expect(page.locator('[data-fact="Free disk"]')).toHaveText(/\d+(\.\d)? [KMGT]?B/);
      await expect(page.locator('[data-fact="Host key"]')).toContainText(d.fingerprint());
      expect(await facts.count()).toBeGreaterThan(5);
      if (i === 0) {
        await page.getByRole("button", { name: "Edit" }).click();
        const edit = page.getByRole("form", { name: "Edit device" });
        await edit.getByLabel("Tags").fill("canary-first");
        await edit.getByRole("button", { name: "Save" }).click();
        await expect(page.locator('[data-fact="Tags / group"]')).toHaveText(`canary-first, group bench-${run}`);
      }
    }
    await page.goto("/fleet");
    // Reachable, but its policy service has nothing to run yet.
    for (const name of names) await expect(page.locator(`[data-device="${name}"]`)).toContainText("degraded");
    // No page carries a credential.
    expect(await page.content()).not.toContain("PRIVATE KEY");
  });

  await test.step("register two versions of a policy", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Models", exact: true }).click();
    await page.getByRole("button", { name: "New model" }).click();
    await page.getByLabel("Model name").fill(`fleet-policy-${run}`);
    await page.getByRole("button", { name: "Create model" }).click();
    await page.getByLabel("ONNX file").setInputFiles(path.join(dir, "mlp.onnx"));
    await page.getByRole("button", { name: "Add version" }).click();
    await expect(page.locator('[data-version="1"]').getByText("ready", { exact: true })).toBeVisible({ timeout: 60_000 });
    await page.getByRole("tab", { name: "From a model hub" }).click();
    await page.getByLabel("Repository", { exact: true }).fill("lerobot/so101-conv");
    await page.getByLabel("File in the repository").fill("model.onnx");
    await page.getByRole("button", { name: "Add version" }).click();
    await expect(page.locator('[data-version="2"]').getByText("ready", { exact: true })).toBeVisible({ timeout: 60_000 });
  });

  await test.step("roll version 1 out to every device at once", async () => {
    await startRollout(page, "v1", "all");
    await expect(page.locator('[data-field="rollout-status"]')).toHaveText("succeeded", { timeout: 90_000 });
    for (const d of rig.devices) expect(d.currentTarget()).toBe(`models/${v1}.onnx`);
    await page.goto("/fleet");
    for (const name of names) await expect(page.locator(`[data-device="${name}"]`)).toContainText("online");
  });

  await test.step("roll version 2 out canary-first; the device it will not run on rolls itself back", async () => {
    rig.devices[1].control("bad-models", v2);
    await startRollout(page, "v2", "canary");
    const card = (i: number) => page.locator(`[data-target="${names[i]}"]`);
    // The grid fills in live: the canary finishes before the batch starts.
    await expect(card(0)).toHaveAttribute("data-state", "succeeded", { timeout: 90_000 });
    await expect(card(0).locator('[data-field="log"]')).toContainText("sha256 matches the registry");
    await expect(card(1)).toHaveAttribute("data-state", "rolled_back", { timeout: 90_000 });
    await expect(card(1).locator('[data-field="rollback"]')).toHaveText("Automatic rollback: succeeded");
    await expect(card(1).locator('[data-field="log"]')).toContainText("Health check attempt 3 of 3");
    await expect(card(2)).toHaveAttribute("data-state", "succeeded", { timeout: 90_000 });
    await expect(page.locator('[data-field="rollout-status"]')).toHaveText("failed");
    rig.devices[1].control("bad-models", null);
    expect(rig.devices.map((d) => d.currentTarget())).toEqual([`models/${v2}.onnx`, `models/${v1}.onnx`, `models/${v2}.onnx`]);
  });

  await test.step("roll the whole rollout back by hand", async () => {
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Roll back rollout" }).click();
    await expect(page.getByRole("heading", { level: 1 })).toContainText(`Rollback to fleet-policy-${run} v1`);
    await expect(page.locator('[data-field="rollout-status"]')).toHaveText("succeeded", { timeout: 90_000 });
    for (const d of rig.devices) {
      expect(d.currentTarget()).toBe(`models/${v1}.onnx`);
      expect(sha(fs.readFileSync(path.join(d.modelDir, "current_model.onnx")))).toBe(v1);
    }
    await page.goto("/fleet");
    for (const name of names) await expect(page.locator(`[data-device="${name}"] [data-field="version"]`)).toHaveText(`fleet-policy-${run} v1`);
  });

  await test.step("a device's page charts its health checks over time and says what the latest found", async () => {
    await page.goto("/fleet");
    await page.locator(`[data-device="${names[1]}"]`).getByRole("link", { name: names[1] }).click();
    // The worker checks each device once a minute, skipping one checked within the last minute
    // by other means (a connection test): wait for a second check — up to three minutes, as a
    // skipped minute and a busy worker can put it there — then read the charts afresh.
    await expect.poll(() => page.getByRole("list", { name: "Timeline" }).locator("li").count(), { timeout: 190_000, intervals: [5000] }).toBeGreaterThanOrEqual(2);
    await page.reload();
    // The last hour, a point per check (the default 24 hours may put two checks in one point).
    await page.getByRole("button", { name: "1 hour" }).click();
    await expect(page.getByRole("button", { name: "1 hour" })).toHaveAttribute("aria-pressed", "true");
    const timing = page.getByTestId("health-chart-timing");
    await expect(timing.locator(".u-legend")).toContainText("check time (ms)");
    await expectChartDrawn(page, timing, ["check time (ms)", "load (1 min)", "time"]);
    await expectChartDrawn(page, page.getByTestId("health-chart-resources"), ["free memory (GiB)", "free disk (GiB)"]);
    // Away from the charts the line under them gives the latest check; over them, the check pointed at.
    await page.mouse.move(0, 0);
    const reading = page.getByTestId("health-reading");
    await expect(reading).toContainText(/^Latest check, .*(online|degraded|offline)/);
    // The earliest check may predate the connection test that pinned the device's host key: it
    // found the device's state unknown, and says why.
    await hoverPlot(page, timing, 0.02);
    await expect(reading).toContainText(/^At .*(online|degraded|offline|unknown)/);
  });

  await test.step("find every step in the audit log", async () => {
    await page.goto("/settings/audit");
    for (const action of ["device.create", "device.update", "device.test", "rollout.create", "rollout.rollback"]) {
      await expect(page.locator(`tr[data-action="${action}"]`).first()).toBeVisible();
    }
    await expect(page.locator('tr[data-action="device.create"]')).toHaveCount(3);
    await expect(page.locator('tr[data-action="rollout.create"]')).toHaveCount(2);
    await expect(page.locator('tr[data-action="rollout.rollback"]').first()).toContainText("Fay Fleet");
  });
});
