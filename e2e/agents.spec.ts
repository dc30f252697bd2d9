import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { expect, test } from "@playwright/test";
import { AGENT_BUNDLE, buildAgent, runAgent } from "../agent/test-helpers";
import { signUp, unique } from "./helpers";

// A lab connects the agent on the robot's computer: make a token, log in, run
// `gantry-agent connect`, and see the agent come online on the Agents page with what its
// host is; then ping it from the page and read the answer.

test("a connected agent shows online with its host facts and answers a ping", async ({ page, baseURL }) => {
  test.setTimeout(180_000);
  buildAgent();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-agent-"));
  const name = `arm-pc-${unique()}`;
  await signUp(page, { name: "Ada Agent", email: `agent-${unique()}@example.test`, password: "a long enough password" });

  let token = "";
  await test.step("make an API token with the write scope and log the agent in", async () => {
    await page.goto("/settings/tokens");
    await page.getByLabel("Name").fill("robot computer");
    await page.getByLabel(/^write/).check();
    await page.getByRole("button", { name: "Create token" }).click();
    token = await page.getByLabel("New API token").inputValue();
    const login = await runAgent(["login", "--portal", baseURL!, "--token", token], { home });
    expect(login.code, login.stderr).toBe(0);
  });

  const agent = spawn(process.execPath, [AGENT_BUNDLE, "connect", "--name", name], { env: { ...process.env, GANTRY_AGENT_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  agent.stdout.on("data", (d: Buffer) => (output += d.toString()));
  agent.stderr.on("data", (d: Buffer) => (output += d.toString()));
  try {
    await test.step("the Agents page shows it online with its facts", async () => {
      await page.goto("/");
      await page.getByRole("link", { name: "Agents", exact: true }).first().click();
      await expect(page.getByRole("heading", { level: 1 })).toHaveText("Agents");
      await expect(page.getByLabel("Agent connect commands")).toContainText("gantry-agent.cjs connect --service");
      const card = page.locator(`[data-agent="${name}"]`);
      await expect(card.getByText("online", { exact: true })).toBeVisible({ timeout: 30_000 });
      await expect(card.locator('[data-fact="cpu"]')).toContainText(`${os.cpus().length} cores`, { timeout: 30_000 });
      await expect(card.locator('[data-fact="os"]')).toContainText(os.release());
      // Present or not, Python and lerobot each say something.
      await expect(card.locator('[data-fact="python"]')).not.toBeEmpty();
      await expect(card.locator('[data-fact="lerobot"]')).not.toBeEmpty();
    });

    await test.step("ping it and read the round trip", async () => {
      const card = page.locator(`[data-agent="${name}"]`);
      await card.getByRole("button", { name: "Ping" }).click();
      const ping = card.locator('[data-command="ping"]').first();
      await expect(ping).toHaveAttribute("data-status", "succeeded", { timeout: 20_000 });
      await expect(ping.locator('[data-field="outcome"]')).toContainText(/answered in \d+ ms round trip/);
      expect(output).toContain("Running ping");
    });
  } catch (error) {
    console.error(`gantry-agent connect said:\n${output}`);
    throw error;
  } finally {
    agent.kill("SIGTERM");
  }
});
