import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { expect, test } from "@playwright/test";
import { AGENT_BUNDLE, buildAgent, runAgent } from "../agent/test-helpers";
import { MotorBusSim, SimMotor } from "../tests/helpers/motor-bus-sim";
import { differingPixels, drawnPixels } from "../tests/helpers/png";
import { canvasPng, signUp, unique } from "./helpers";

// A person sets up an SO-101 follower from the browser, with nothing but the agent next to the
// arm: the agent (built as it ships) talks through serialport to a simulated bus of STS3215
// motors at the far end of a pty, listed from a folder of port links. Every step of the wizard
// runs: the port found by unplugging, each motor given its id one at a time (gripper first),
// the supply checked, homing and range of motion, LeRobot's file written (compared byte for
// byte), the live joints, and a drift check against the motors' EEPROM.

const ARM = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"];

test("sets up and calibrates an SO-101 follower through the agent, and watches its joints live", async ({ page, baseURL }) => {
  test.setTimeout(300_000);
  buildAgent();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-robot-"));
  const portsDir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-ports-"));
  const calibrationRoot = path.join(home, "calibration");
  // One new motor on the bus at a time, as a person plugs them: factory id 1 at 1 Mbaud.
  const sim = await MotorBusSim.start({ protocol: "feetech", dir: portsDir, motors: [{ id: 1 }], followHostBaud: true });
  // Another adapter on the computer, which must not be mistaken for the arm's.
  fs.symlinkSync("/dev/null", path.join(portsDir, "ttyACM0"));
  const armPort = sim.hostPath;
  const agentName = `arm-pc-${unique()}`;
  const robotName = `e2e_follower_${unique().replace(/[^a-z0-9]/gi, "").slice(0, 8)}`;
  await signUp(page, { name: "Rosa Robot", email: `robot-${unique()}@example.test`, password: "a long enough password" });

  await page.goto("/settings/tokens");
  await page.getByLabel("Name").fill("arm computer");
  await page.getByLabel(/^write/).check();
  await page.getByRole("button", { name: "Create token" }).click();
  const token = await page.getByLabel("New API token").inputValue();
  const login = await runAgent(["login", "--portal", baseURL!, "--token", token], { home });
  expect(login.code, login.stderr).toBe(0);

  const agent = spawn(process.execPath, [AGENT_BUNDLE, "connect", "--name", agentName, "--ports-dir", portsDir], {
    env: { ...process.env, GANTRY_AGENT_HOME: home, HF_LEROBOT_CALIBRATION: calibrationRoot },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  agent.stdout.on("data", (d: Buffer) => (output += d.toString()));
  agent.stderr.on("data", (d: Buffer) => (output += d.toString()));
  try {
    await test.step("add the arm on its agent", async () => {
      await page.goto("/robots");
      await expect(page.getByRole("heading", { level: 1 })).toHaveText("Robots");
      await expect(page.getByLabel("Agent").locator("option", { hasText: agentName })).toHaveCount(1, { timeout: 30_000 });
      await page.getByLabel("Name").fill(robotName);
      await page.getByLabel("Type").selectOption("so101_follower");
      await page.getByLabel("Agent").selectOption({ label: agentName });
      await page.getByRole("button", { name: "Add and set up" }).click();
      await expect(page.getByRole("heading", { level: 1 })).toHaveText(robotName);
      await expect(page.getByText("agent online")).toBeVisible({ timeout: 30_000 });
    });

    await test.step("1. find the port by unplugging the arm", async () => {
      const step = page.locator('[data-step="port"]');
      await step.getByRole("button", { name: "List ports" }).click();
      await expect(step.locator(`[data-port="${armPort}"]`)).toBeVisible({ timeout: 20_000 });
      await expect(step.locator(`[data-port="${path.join(portsDir, "ttyACM0")}"]`)).toBeVisible();
      await step.getByRole("button", { name: "Find by unplugging" }).click();
      // Unplugging the USB cable: the port's link goes away.
      const target = fs.readlinkSync(armPort);
      fs.unlinkSync(armPort);
      await step.getByRole("button", { name: "List again" }).click();
      await expect(step.locator('[data-field="unplugged"]')).toHaveText(armPort, { timeout: 20_000 });
      fs.symlinkSync(target, armPort);
      await step.getByRole("button", { name: `Use ${armPort}` }).click();
      await expect(step.locator('[data-field="port"]')).toHaveText(armPort);
    });

    await test.step("2. give each motor its id, one at a time, gripper first", async () => {
      const step = page.locator('[data-step="motors"]');
      const ready: SimMotor[] = [];
      for (const [i, name] of [...ARM].reverse().entries()) {
        const id = ARM.indexOf(name) + 1;
        if (i === 1) {
          // Two new motors plugged in at once: both answer as id 1, and the wizard says so.
          sim.motors.push(new SimMotor("feetech", { id: 1 }));
          await step.getByRole("button", { name: `Set up ${name} as id ${id}` }).click();
          await expect(step.locator('[data-field="command-error"]')).toContainText(/more than one|2 motors|disconnect all but/i, { timeout: 60_000 });
          sim.motors.pop();
        }
        if (i === 2) {
          // A second-hand motor at another id and baud is found wherever it is.
          sim.motors.splice(0, sim.motors.length, new SimMotor("feetech", { id: 9, baud: 500_000 }));
        }
        await step.getByRole("button", { name: `Set up ${name} as id ${id}` }).click();
        await expect(step.locator(`[data-motor="${name}"]`)).toContainText(id === 1 && i !== 2 ? /already id 1|→ id 1/ : `→ id ${id} at 1000000 baud`, { timeout: 90_000 });
        // The person unplugs it and plugs in the next new motor.
        ready.push(sim.motors[0]!);
        sim.motors.splice(0, sim.motors.length, new SimMotor("feetech", { id: 1 }));
      }
      // Every motor daisy-chained again.
      sim.motors.splice(0, sim.motors.length, ...ready);
      await step.getByRole("button", { name: "Check all motors" }).click();
      await expect(step.locator('[data-field="scan"]')).toContainText("All 6 motors answer at 1 Mbaud", { timeout: 60_000 });
      for (const [i] of ARM.entries()) expect(sim.motor(i + 1).baud).toBe(1_000_000);
    });

    await test.step("3. the supply suits a follower; a leader's supply is called out", async () => {
      const step = page.locator('[data-step="power"]');
      await step.getByRole("button", { name: "Check the supply" }).click();
      await expect(step.locator('[data-field="power"]')).toHaveAttribute("data-verdict", "ok", { timeout: 20_000 });
      for (const m of sim.motors) m.voltage = 50;
      await step.getByRole("button", { name: "Check the supply" }).click();
      await expect(step.locator('[data-field="power"]')).toHaveAttribute("data-verdict", "wrong-supply", { timeout: 20_000 });
      await expect(step.locator('[data-field="power"]')).toContainText(/12 V/);
      for (const m of sim.motors) m.voltage = 121;
    });

    await test.step("coming back to the page, the checks made earlier still show, with when they were made", async () => {
      await page.reload();
      const motors = page.locator('[data-step="motors"]');
      await expect(motors.locator('[data-field="scan"]')).toContainText("All 6 motors answer at 1 Mbaud");
      await expect(motors.locator('[data-field="checked-earlier"]')).toHaveText(/^Checked (just now|\d+s ago):$/);
      await expect(motors.getByText("done", { exact: true })).toBeVisible();
      const power = page.locator('[data-step="power"]');
      await expect(power.locator('[data-field="power"]')).toHaveAttribute("data-verdict", "wrong-supply");
      await expect(power.getByText("to do", { exact: true })).toBeVisible();
    });

    // The arm's actual encoder positions in its middle pose.
    const middle = [2000, 2100, 1900, 2200, 1800, 2047];
    const offsets = middle.map((p) => p - 2047);
    const ranges = [
      [900, 3100],
      [850, 3250],
      [1000, 3050],
      [950, 3000],
      [120, 3990], // wrist_roll turns all the way round: it gets 0..4095 whatever it did
      [2030, 3400],
    ];
    await test.step("4a. homing: a joint far from the middle is shown, then every joint is set to read mid-range", async () => {
      const step = page.locator('[data-step="calibration"]');
      sim.setPositions({ 1: middle[0]!, 2: middle[1]!, 3: middle[2]!, 4: middle[3]!, 5: 4000, 6: middle[5]! });
      await step.getByRole("button", { name: "Watch the joints" }).click();
      await expect(step.locator('[data-field="far"]')).toContainText("wrist_roll", { timeout: 20_000 });
      sim.setPositions({ 5: middle[4]! });
      await expect(step.locator('[data-field="near"]')).toBeVisible({ timeout: 10_000 });
      await step.getByRole("button", { name: "Stop watching" }).click();
      await expect(step.getByRole("button", { name: "Watch the joints" })).toBeVisible({ timeout: 10_000 });
      await step.getByRole("button", { name: "Set the middle" }).click();
      await expect(step.getByText(/Homing offsets written/)).toContainText(`shoulder_pan ${offsets[0]}`, { timeout: 20_000 });
      for (const [i] of ARM.entries()) expect(sim.motor(i + 1).homingOffset).toBe(offsets[i]);
    });

    await test.step("4b. range of motion, recorded while the joints move", async () => {
      const step = page.locator('[data-step="calibration"]');
      await step.getByLabel("Seconds").fill("12");
      await step.getByRole("button", { name: "Record the range" }).click();
      await expect(step.locator('[data-field="ranges"]')).toBeVisible({ timeout: 20_000 });
      // A person moves each joint to both ends (positions are actual; the motors read actual − offset),
      // each end held until the page shows it was read (every joint is read at once).
      const at = (end: 0 | 1) => Object.fromEntries(ARM.map((_, i) => [i + 1, ranges[i]![end] + offsets[i]!]));
      const gripper = step.locator('[data-field="ranges"] [data-joint="gripper"]');
      sim.setPositions(at(0));
      await expect(gripper.locator('[data-field="min"]')).toHaveText(String(ranges[5]![0]), { timeout: 10_000 });
      sim.setPositions(at(1));
      await expect(gripper.locator('[data-field="max"]')).toHaveText(String(ranges[5]![1]), { timeout: 10_000 });
      sim.setPositions(Object.fromEntries(ARM.map((_, i) => [i + 1, middle[i]!])));
      // The recording ends with the ranges it found.
      await expect(step.locator('[data-field="command-progress"]')).toHaveCount(0, { timeout: 30_000 });
      await expect(gripper.locator('[data-field="min"]')).toHaveText(String(ranges[5]![0]));
      await expect(gripper.locator('[data-field="max"]')).toHaveText(String(ranges[5]![1]));
    });

    const file = path.join(calibrationRoot, "robots", "so101_follower", `${robotName}.json`);
    const saved = ranges.map((r, i) => (ARM[i] === "wrist_roll" ? [0, 4095] : r));
    const expected =
      "{\n" +
      ARM.map((name, i) => `    "${name}": {\n        "id": ${i + 1},\n        "drive_mode": 0,\n        "homing_offset": ${offsets[i]},\n        "range_min": ${saved[i]![0]},\n        "range_max": ${saved[i]![1]}\n    }`).join(",\n") +
      "\n}";
    await test.step("4c. save: LeRobot's file on the agent's host, byte for byte, and the limits in the motors", async () => {
      const step = page.locator('[data-step="calibration"]');
      await step.getByRole("button", { name: "Save the calibration" }).click();
      await expect(step.locator('[data-field="saved"]')).toContainText(file, { timeout: 30_000 });
      expect(fs.readFileSync(file, "utf8")).toBe(expected);
      const sts = { Min_Position_Limit: 9, Max_Position_Limit: 11 };
      for (const [i] of ARM.entries()) {
        expect(sim.motor(i + 1).get(sts.Min_Position_Limit, 2)).toBe(saved[i]![0]);
        expect(sim.motor(i + 1).get(sts.Max_Position_Limit, 2)).toBe(saved[i]![1]);
      }
      await expect(page.locator('[data-step="calibration"]')).toContainText("calibrated");
    });

    await test.step("5. live joints in LeRobot's units, with a rolling plot", async () => {
      const step = page.locator('[data-step="live"]');
      await step.getByRole("button", { name: "Show live joints" }).click();
      const pan = step.locator('[data-testid="live-bars"] [data-joint="shoulder_pan"] [data-field="value"]');
      // shoulder_pan at its middle pose reads 2047 after homing: (2047 − 900) / (3100 − 900) · 200 − 100.
      await expect(pan).toHaveText(((2047 - 900) / (3100 - 900) * 200 - 100).toFixed(1), { timeout: 20_000 });
      sim.setPositions({ 1: 3100 + offsets[0]! });
      await expect(pan).toHaveText("100.0", { timeout: 10_000 });
      await expect(step.getByTestId("live-joints-chart")).toBeVisible();
      // The twin moves with the arm: its pixels change when a joint does.
      await step.getByLabel("Show the 3D twin").check();
      const scene = step.getByTestId("scene");
      await expect(scene).toHaveAttribute("data-twin-ready", "yes", { timeout: 60_000 });
      // Not a blank canvas: the arm covers a good part of it.
      const canvas = scene.locator("canvas");
      await expect.poll(async () => drawnPixels(await canvasPng(canvas)), { timeout: 20_000 }).toBeGreaterThan(2000);
      const before = await canvasPng(canvas);
      sim.setPositions({ 1: 900 + offsets[0]!, 3: 3050 + offsets[2]! });
      await expect(step.locator('[data-testid="live-bars"] [data-joint="shoulder_pan"] [data-field="value"]')).toHaveText("-100.0", { timeout: 10_000 });
      await expect.poll(async () => differingPixels(before, await canvasPng(canvas)), { timeout: 10_000 }).toBeGreaterThan(500);
      await expect(step.locator('[data-field="rate"]')).toContainText(/\d+ readings\/s/);
      await step.getByRole("button", { name: "Stop" }).click();
      await expect(step.getByRole("button", { name: "Show live joints" })).toBeVisible({ timeout: 10_000 });
    });

    await test.step("drift: none at first, then a motor whose EEPROM changed", async () => {
      const step = page.locator('[data-step="history"]');
      await expect(step.locator('[data-field="history"] li')).toHaveCount(1);
      await step.getByRole("button", { name: "Check for drift" }).click();
      await expect(step.locator('[data-field="drift"]')).toContainText("no drift", { timeout: 20_000 });
      sim.motor(3).put(11, 2, 4095);
      await step.getByRole("button", { name: "Check for drift" }).click();
      await expect(step.locator('[data-field="drift"]')).toContainText(/elbow_flex range_max: file 3050, motor 4095/, { timeout: 20_000 });
    });

    await test.step("export is LeRobot's file; a wrong file is refused on import", async () => {
      const step = page.locator('[data-step="history"]');
      const download = page.waitForEvent("download");
      await step.getByRole("link", { name: "Download LeRobot file" }).first().click();
      const saved = await (await download).path();
      expect(fs.readFileSync(saved, "utf8")).toBe(expected);
      await step.getByLabel("Import a LeRobot calibration file").fill(expected.replace('"range_min": 900', '"range_min": "low"'));
      await step.getByRole("button", { name: "Import" }).click();
      await expect(step.getByText(/shoulder_pan\.range_min: range_min must be a number/)).toBeVisible();
      await expect(step.locator('[data-field="history"] li')).toHaveCount(1);
    });
  } catch (error) {
    console.error(`gantry-agent connect said:\n${output}`);
    throw error;
  } finally {
    agent.kill("SIGTERM");
    await sim.stop();
  }
});

