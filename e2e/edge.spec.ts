import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { buildAgent, recordEpisode, runAgent } from "../agent/test-helpers";
import { signUp, unique } from "./helpers";

// The edge pipeline as a lab uses it: make a token in the portal, log the agent in from a
// terminal, upload a recorded episode over tus to the real portal, and follow it through the
// worker's encoding until the dataset has it.

test("an episode recorded at the edge goes from the agent into a dataset", async ({ page, request, baseURL }) => {
  test.setTimeout(180_000);
  buildAgent();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-agent-"));
  const recording = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-recording-"));
  recordEpisode(recording, { episode: 0, frames: 45, size: "320x240", cameraFolder: (c) => `observation.images.${c}` });
  const repoId = `lab/pick-${unique()}`;

  await signUp(page, { name: "Edgar Edge", email: `edge-${unique()}@example.test`, password: "a long enough password" });
  let token = "";
  await test.step("make an API token with the write scope", async () => {
    await page.goto("/settings/tokens");
    await page.getByLabel("Name").fill("robot laptop");
    await page.getByLabel(/^write/).check();
    await page.getByRole("button", { name: "Create token" }).click();
    token = await page.getByLabel("New API token").inputValue();
  });

  await test.step("log the agent in and upload the episode", async () => {
    const login = await runAgent(["login", "--portal", baseURL!, "--token", token], { home });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain("Logged in to");
    const upload = await runAgent(["upload", recording, "--dataset", repoId, "--task", "pick the cube"], { home });
    expect(upload.code, upload.stderr).toBe(0);
    expect(upload.stderr).toMatch(/episode 0: uploading: 91 files/);
    expect(upload.stderr).toMatch(/queued for encoding/);
  });

  await test.step("the portal encodes it; the earlier status endpoint follows along", async () => {
    await expect
      .poll(async () => (await (await request.get(`/edge/status/${repoId}`, { headers: { authorization: `Bearer ${token}` } })).json()).status, { timeout: 150_000, intervals: [1000] })
      .toBe("COMPLETED");
    const status = await runAgent(["status", repoId], { home });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`${repoId}: COMPLETED 100% — 1/1 episodes encoded`);
  });
});
