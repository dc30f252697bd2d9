import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { AGENT_BUNDLE, buildAgent, runAgent } from "../agent/test-helpers";
import { runStandInTrainer } from "../tests/helpers/capture-trainer";
import { MotorBusSim } from "../tests/helpers/motor-bus-sim";
import { differingPixels, drawnPixels } from "../tests/helpers/png";
import { canvasPng, signUp, unique } from "./helpers";

// A capture from the browser's side: a session is started on the Captures page, frames are
// posted with an API token (as a camera client does), the stand-in trainer claims the session
// and pushes snapshots, and the 3D view (Spark through React Three Fiber, in Chromium's
// software WebGL) draws each new snapshot; joint angles posted the earlier way move the twin.
// Pixels are compared, not just the page's text.

test("a capture's scene and twin update in the 3D view as the trainer pushes and joints are posted", async ({ page, baseURL }) => {
  test.setTimeout(240_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-capture-"));
  const jpeg = path.join(dir, "frame.jpg");
  execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x480", "-frames:v", "1", jpeg]);
  const frame = fs.readFileSync(jpeg);
  await signUp(page, { name: "Cai Capture", email: `capture-${unique()}@example.test`, password: "a long enough password" });
  await page.goto("/settings/tokens");
  await page.getByLabel("Name").fill("camera");
  await page.getByLabel(/^write/).check();
  await page.getByRole("button", { name: "Create token" }).click();
  const token = await page.getByLabel("New API token").inputValue();
  const auth = { authorization: `Bearer ${token}` };

  await page.goto("/captures");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Captures");
  await page.getByLabel("Name").fill("Workbench");
  await page.getByLabel("Frames per chunk").fill("5");
  await page.getByRole("button", { name: "Start capturing" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Workbench");
  const sessionId = new URL(page.url()).pathname.split("/").at(-1)!;

  const trainer = new AbortController();
  // The trainer states where the capture camera was: just above the twin's base, looking down the scene's z.
  const camera = { position: [0.1, -0.25, -0.1], rotation: [0, 0, 0, 1], fx: 500, fy: 500, cx: 320, cy: 240, width: 640, height: 480 };
  const training = runStandInTrainer({ portal: baseURL!, token, sessionId, every: 5, format: "ply", camera, signal: trainer.signal }).catch((error: unknown) => {
    if (!trainer.signal.aborted) throw error;
  });
  const postFrames = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const response = await page.request.post(`/api/captures/${sessionId}/frames`, { headers: { ...auth, "content-type": "image/jpeg" }, data: frame });
      expect(response.status(), await response.text()).toBe(201);
    }
  };
  try {
    const scene = page.getByTestId("scene");
    const canvas = scene.locator("canvas");
    await test.step("the twin stands in the empty scene, posed by hand with the sliders", async () => {
      await expect(scene).toHaveAttribute("data-twin-ready", "yes", { timeout: 60_000 });
      await expect.poll(async () => drawnPixels(await canvasPng(canvas)), { timeout: 20_000 }).toBeGreaterThan(2000);
      const before = await canvasPng(canvas);
      await page.getByLabel("shoulder_lift angle").fill("1.2");
      await expect.poll(async () => differingPixels(before, await canvasPng(canvas)), { timeout: 10_000 }).toBeGreaterThan(500);
    });

    await test.step("the trainer's first snapshot is drawn once it has loaded", async () => {
      await page.getByRole("checkbox", { name: "Twin" }).uncheck();
      await expect(scene).toHaveAttribute("data-twin-ready", "no");
      const empty = await canvasPng(canvas);
      await postFrames(5);
      await expect(page.locator('[data-field="snapshot-count"]')).toHaveText("1 snapshots", { timeout: 30_000 });
      await expect(page.locator('[data-field="frames"]')).toHaveText("5 frames");
      await expect(scene).toHaveAttribute("data-splats", /^\d+$/, { timeout: 30_000 });
      await expect.poll(async () => differingPixels(empty, await canvasPng(canvas)), { timeout: 20_000 }).toBeGreaterThan(50);
    });

    await test.step("the capture camera's frustum is drawn, and hidden with its toggle", async () => {
      const toggle = page.getByRole("checkbox", { name: "Camera" });
      await expect(toggle).toBeChecked({ timeout: 10_000 });
      const withFrustum = await canvasPng(canvas);
      await toggle.uncheck();
      await expect.poll(async () => differingPixels(withFrustum, await canvasPng(canvas)), { timeout: 10_000 }).toBeGreaterThan(50);
      await toggle.check();
    });

    await test.step("a newer snapshot replaces it; the timeline steps back to the first", async () => {
      const first = await canvasPng(canvas);
      const firstSplats = await scene.getAttribute("data-splats");
      await postFrames(5);
      await expect(page.locator('[data-field="snapshot-count"]')).toHaveText("2 snapshots", { timeout: 30_000 });
      await expect(scene).not.toHaveAttribute("data-splats", firstSplats!, { timeout: 30_000 });
      await expect.poll(async () => differingPixels(first, await canvasPng(canvas)), { timeout: 20_000 }).toBeGreaterThan(50);
      await page.getByLabel("Snapshot timeline").fill("0");
      await expect(scene).toHaveAttribute("data-splats", firstSplats!, { timeout: 30_000 });
      await page.getByRole("button", { name: "Follow the newest" }).click();
    });

    await test.step("joint angles posted the earlier way move the twin", async () => {
      await page.getByRole("checkbox", { name: "Twin" }).check();
      await expect(scene).toHaveAttribute("data-twin-ready", "yes", { timeout: 60_000 });
      const post = (angles: number[]) => page.request.post("/update-joint-angles", { headers: auth, data: { joint_angles: angles } });
      const first = await post([0, 0, 0, 0, 0, 0]);
      expect(first.status(), await first.text()).toBe(200);
      expect(await first.json()).toMatchObject({ success: true, joint_angles: [0, 0, 0, 0, 0, 0] });
      await expect(page.locator('[data-joint="shoulder_pan"] [data-field="angle"]')).toHaveText("0.00", { timeout: 10_000 });
      const before = await canvasPng(canvas);
      await post([1.2, -0.8, 1.0, 0.5, 0, 1.0]);
      await expect(page.locator('[data-joint="shoulder_pan"] [data-field="angle"]')).toHaveText("1.20", { timeout: 10_000 });
      await expect.poll(async () => differingPixels(before, await canvasPng(canvas)), { timeout: 10_000 }).toBeGreaterThan(500);
    });
  } finally {
    trainer.abort();
    await training;
  }
});

// The twin on a capture's page follows the capture's own arm: the agent (built as it ships)
// reads a simulated SO-101 bus, its readings reach the page through the hardware stream, are
// turned into the twin's radians with the arm's calibration, and are kept as the capture's joints.
test("a capture bound to an arm poses the twin from the arm's live joints and records them", async ({ page, baseURL }) => {
  test.setTimeout(240_000);
  buildAgent();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-capture-arm-"));
  const portsDir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-capture-ports-"));
  const motors = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"];
  const sim = await MotorBusSim.start({ protocol: "feetech", dir: portsDir, motors: motors.map((_, i) => ({ id: i + 1 })), followHostBaud: true });
  // Every joint's range is 1024..3072 about the middle 2048, where the sim's motors start.
  const calibration = Object.fromEntries(motors.map((name, i) => [name, { id: i + 1, drive_mode: 0, homing_offset: 0, range_min: 1024, range_max: 3072 }]));
  const agentName = `capture-pc-${unique()}`;
  const robotName = `capture_arm_${unique().replace(/[^a-z0-9]/gi, "").slice(0, 8)}`;
  await signUp(page, { name: "Ada Arm", email: `capture-arm-${unique()}@example.test`, password: "a long enough password" });
  await page.goto("/settings/tokens");
  await page.getByLabel("Name").fill("arm computer");
  await page.getByLabel(/^write/).check();
  await page.getByRole("button", { name: "Create token" }).click();
  const token = await page.getByLabel("New API token").inputValue();
  const login = await runAgent(["login", "--portal", baseURL!, "--token", token], { home });
  expect(login.code, login.stderr).toBe(0);
  const agent = spawn(process.execPath, [AGENT_BUNDLE, "connect", "--name", agentName, "--ports-dir", portsDir], { env: { ...process.env, GANTRY_AGENT_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  agent.stdout.on("data", (d: Buffer) => (output += d.toString()));
  agent.stderr.on("data", (d: Buffer) => (output += d.toString()));
  try {
    await test.step("the arm: added on its agent, its port chosen, its calibration imported", async () => {
      await page.goto("/robots");
      await expect(page.getByLabel("Agent").locator("option", { hasText: agentName })).toHaveCount(1, { timeout: 30_000 });
      await page.getByLabel("Name").fill(robotName);
      await page.getByLabel("Type").selectOption("so101_follower");
      await page.getByLabel("Agent").selectOption({ label: agentName });
      await page.getByRole("button", { name: "Add and set up" }).click();
      await expect(page.getByRole("heading", { level: 1 })).toHaveText(robotName);
      const port = page.locator('[data-step="port"]');
      await port.getByRole("button", { name: "List ports" }).click();
      await port.locator(`[data-port="${sim.hostPath}"]`).getByRole("button", { name: "Use" }).click();
      await expect(port.locator('[data-field="port"]')).toHaveText(sim.hostPath);
      const history = page.locator('[data-step="history"]');
      await history.getByLabel("Import a LeRobot calibration file").fill(JSON.stringify(calibration));
      await history.getByRole("button", { name: "Import" }).click();
      await expect(history.locator('[data-field="history"] li')).toHaveCount(1);
    });

    await page.goto("/captures");
    await page.getByLabel("Name").fill("Arm bench");
    await page.getByLabel("Arm").selectOption({ label: robotName });
    await page.getByRole("button", { name: "Start capturing" }).click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("Arm bench");
    const sessionId = new URL(page.url()).pathname.split("/").at(-1)!;
    const scene = page.getByTestId("scene");
    const canvas = scene.locator("canvas");
    const pan = page.locator('[data-joint="shoulder_pan"] [data-field="angle"]');

    await test.step("following the arm: the twin takes its pose, and moves when the arm does", async () => {
      await expect(scene).toHaveAttribute("data-twin-ready", "yes", { timeout: 60_000 });
      await page.getByRole("button", { name: "Follow the arm live" }).click();
      await expect(page.locator('[data-field="live-state"]')).toHaveText("live", { timeout: 30_000 });
      await expect(pan).toHaveText("0.00", { timeout: 10_000 });
      const before = await canvasPng(canvas);
      // +100 at the top of the range: 1024 counts past the middle, 90°.
      sim.setPositions({ 1: 3072, 3: 1536 });
      await expect(pan).toHaveText("1.57", { timeout: 10_000 });
      await expect(page.locator('[data-joint="elbow_flex"] [data-field="angle"]')).toHaveText("-0.79");
      await expect.poll(async () => differingPixels(before, await canvasPng(canvas)), { timeout: 10_000 }).toBeGreaterThan(500);
    });

    await test.step("the readings are kept as the capture's joints; stopping frees the arm", async () => {
      // The page may draw a reading a moment before it is stored: asked until it is.
      await expect
        .poll(async () => {
          const latest = await page.request.get(`/api/captures/${sessionId}/joints`, { headers: { authorization: `Bearer ${token}` } });
          expect(latest.status()).toBe(200);
          return Math.round(((await latest.json()) as { angles: number[] }).angles[0]! * 100) / 100;
        }, { timeout: 10_000 })
        .toBe(Math.round((Math.PI / 2) * 100) / 100);
      await page.getByRole("button", { name: "Stop following the arm" }).click();
      await expect(page.getByRole("button", { name: "Follow the arm live" })).toBeVisible({ timeout: 10_000 });
    });
  } catch (error) {
    console.error(`gantry-agent connect said:\n${output}`);
    throw error;
  } finally {
    agent.kill("SIGTERM");
    await sim.stop();
  }
});
