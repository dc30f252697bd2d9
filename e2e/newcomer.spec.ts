import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { signUp, unique } from "./helpers";

// What a newcomer meets first: the Overview's checklist, an API token, the edge agent
// downloaded from the portal and signed in with the line the portal gives, the portal's own
// 404, and the Overview on a phone.

const STEPS = ["token", "agent", "dataset", "model", "endpoint", "device"];

async function ticked(page: Page): Promise<string[]> {
  const checklist = page.getByTestId("getting-started");
  await expect(checklist.locator("[data-step]")).toHaveCount(STEPS.length);
  return checklist.locator('[data-step][data-done="true"]').evaluateAll((items) => items.map((i) => i.getAttribute("data-step")!));
}

async function hasNoSidewaysScroll(page: Page) {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
}

test("a newcomer follows the checklist, gets the agent from the portal, and finds the way back from a bad address", async ({ page }) => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-newcomer-"));
  await signUp(page, { name: "Nina Newcomer", email: `nina-${unique()}@example.test`, password: "a newcomer's passphrase" });

  await test.step("the Overview shows the checklist with nothing ticked", async () => {
    const checklist = page.getByTestId("getting-started");
    await expect(checklist).toContainText("0 of 6 done");
    await expect(checklist.locator("[data-step]")).toHaveText([/Create an API token/, /Connect the edge agent/, /Record or import a dataset/, /Add a model/, /Deploy an endpoint/, /Add a device/]);
    expect(await ticked(page)).toEqual([]);
  });

  let token = "";
  await test.step("its first step opens the tokens page; a token made there ticks it", async () => {
    await page.getByTestId("getting-started").getByRole("link", { name: /Create an API token/ }).click();
    await expect(page).toHaveURL(/\/settings\/tokens$/);
    // Before a token exists the login line asks for one.
    await expect(page.getByLabel("Agent login command")).toContainText("--token <token>");
    await page.getByLabel("Name").fill("robot laptop");
    await page.getByLabel(/^write/).check();
    await page.getByRole("button", { name: "Create token" }).click();
    token = await page.getByLabel("New API token").inputValue();
    expect(token).toMatch(/^gty_/);
    const origin = new URL(page.url()).origin;
    await expect(page.getByLabel("Agent login command")).toHaveText(`node gantry-agent.cjs login --portal ${origin} --token ${token}`);

    // Copy puts the token on the clipboard. Where the browser refuses (a portal on plain http has
    // no clipboard, and the copy command can be refused too), it says so and selects the token.
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin });
    await page.getByRole("button", { name: "Copy the token" }).click();
    await expect(page.getByRole("button", { name: "Copy the token" })).toHaveText("Copied");
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(token);
    await page.evaluate(() => {
      Object.defineProperty(navigator, "clipboard", { value: undefined, configurable: true });
      document.execCommand = () => false;
    });
    await page.getByRole("button", { name: "Copy the login line" }).click();
    await expect(page.getByRole("status").filter({ hasText: "did not let the page copy" })).toBeVisible();
    expect(await page.evaluate(() => window.getSelection()?.toString())).toContain(`--token ${token}`);

    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Overview", exact: true }).click();
    await expect(page.getByTestId("getting-started")).toContainText("1 of 6 done");
    expect(await ticked(page)).toEqual(["token"]);
  });

  await test.step("the agent downloads as the built file, and the login line the portal gives signs it in", async () => {
    await page.getByTestId("getting-started").getByRole("link", { name: /Connect the edge agent/ }).click();
    await expect(page.locator("#edge-agent")).toBeVisible();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download gantry-agent.cjs" }).click()]);
    expect(download.suggestedFilename()).toBe("gantry-agent.cjs");
    const file = path.join(home, "gantry-agent.cjs");
    await download.saveAs(file);
    const sha = (bytes: Buffer) => crypto.createHash("sha256").update(bytes).digest("hex");
    expect(sha(fs.readFileSync(file))).toBe(sha(fs.readFileSync(path.resolve("agent/dist/gantry-agent.cjs"))));
    expect(fs.readFileSync(file, "utf8").startsWith("#!/usr/bin/env node")).toBe(true);

    // The token made in the step before is gone from the page after navigating; make the line again with a new one.
    await page.getByLabel("Name").fill("robot laptop 2");
    await page.getByLabel(/^write/).check();
    await page.getByRole("button", { name: "Create token" }).click();
    await expect(page.getByLabel("Agent login command")).toContainText("--token gty_");
    const line = (await page.getByLabel("Agent login command").textContent())!;
    const [command, ...args] = line.replace("gantry-agent.cjs", file).split(" ");
    expect(command).toBe("node");
    const output = execFileSync(process.execPath, args, { env: { ...process.env, GANTRY_AGENT_HOME: path.join(home, "agent-home") }, encoding: "utf8" });
    expect(output).toContain("Logged in to");
    expect(output).toContain("Nina Newcomer's lab");

    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Overview", exact: true }).click();
    await expect(page.getByTestId("getting-started")).toContainText("2 of 6 done");
    expect(await ticked(page)).toEqual(["token", "agent"]);
  });

  await test.step("the guides the portal points to read in the portal, linked to each other", async () => {
    await page.goto("/settings/tokens");
    await page.locator("#edge-agent").getByRole("link", { name: "the edge guide" }).click();
    await expect(page).toHaveURL(/\/docs\/edge$/);
    await expect(page.getByTestId("guide").getByRole("heading", { level: 1 })).toHaveText("Edge episodes");
    await expect(page.getByTestId("guide").locator("table").first()).toBeVisible();
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Guides" }).click();
    await page.getByRole("list", { name: "Guides" }).getByRole("link", { name: "Datasets" }).click();
    await page.getByTestId("guide").getByRole("link", { name: "edge.md" }).first().click();
    await expect(page).toHaveURL(/\/docs\/edge$/);
    await page.goto("/docs/..%2F..%2Fpackage");
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("This page does not exist");
  });

  await test.step("a bad address gets the portal's own 404 with a way back", async () => {
    const response = await page.goto("/hardware/setup");
    expect(response?.status()).toBe(404);
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("This page does not exist");
    await expect(page).toHaveTitle("Page not found · Gantry");
    // It lists the portal's pages, set-up and captures among them, and promises nothing more.
    const pages = page.getByRole("navigation", { name: "Portal pages" });
    await expect(pages.getByRole("link", { name: "Robots" })).toBeVisible();
    await expect(pages.getByRole("link", { name: "Captures" })).toBeVisible();
    await expect(page.getByText("planned")).toHaveCount(0);
    // An address whose id cannot name a record (cut off, mistyped) shows the same page, not an
    // error about the API's input. (Its status and title stay the page's: the portal's layout has
    // begun streaming by the time the page looks at its id.)
    for (const address of ["/datasets/not-an-id", "/jobs/1234", "/models/0f1e2d3c"]) {
      await page.goto(address);
      await expect(page.getByRole("heading", { level: 1 }), address).toHaveText("This page does not exist");
    }
    await page.getByRole("link", { name: "Back to Overview" }).click();
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByTestId("getting-started")).toBeVisible();
  });

  await test.step("at 390 px the Overview does not scroll sideways and says which job columns are hidden", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    // A job, so the recent-jobs table is there.
    await page.getByRole("button", { name: "Run self-test" }).click();
    await expect(page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
    await page.goto("/");
    await expect(page.getByRole("region", { name: "Recent jobs" }).locator("[data-job-id]")).toHaveCount(1);
    await expect(page.getByTestId("hidden-columns")).toHaveText("The Step and Started by columns are hidden at this width: open a job to see them.", { useInnerText: true });
    expect(await hasNoSidewaysScroll(page)).toBe(true);
    for (const where of ["/settings/tokens", "/hardware"]) {
      await page.goto(where);
      await expect(page.getByRole("heading", { level: 1 }).first()).toBeVisible();
      expect(await hasNoSidewaysScroll(page), where).toBe(true);
    }
  });
  fs.rmSync(home, { recursive: true, force: true });
});
