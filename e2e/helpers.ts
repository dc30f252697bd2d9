import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import nodePath from "node:path";
import { expect, type Locator, type Page } from "@playwright/test";

export const unique = () => Math.random().toString(36).slice(2, 8);

export async function signUp(page: Page, { name, email, password }: { name: string; email: string; password: string }, path = "/sign-up") {
  await page.goto(path);
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
}

export async function signIn(page: Page, { email, password }: { email: string; password: string }) {
  await page.goto("/sign-in");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
}

/** The job page's big percentage, as a number. */
export async function percentOf(page: Page): Promise<number> {
  return Number((await page.getByTestId("job-percent").textContent())?.replace("%", ""));
}

/** Waits on a job's page until the job has ended and expects it to have succeeded; if not, the failure says what its log says. */
export async function expectJobSucceeded(page: Page, timeout = 30_000) {
  const status = page.getByTestId("job-status");
  await expect(status).toHaveText(/^(succeeded|failed|cancelled)$/, { timeout });
  if ((await status.textContent()) === "succeeded") return;
  const log = (await page.getByRole("list", { name: "Job log" }).innerText()).trim();
  throw new Error(`The job ended ${await status.textContent()}, not succeeded; its log:\n${log}`);
}

declare global {
  interface Window {
    __canvasText?: Set<string>;
  }
}

/** From the next page load on, every string drawn on a canvas is kept (uPlot draws its axes' labels and ticks there). */
export async function recordCanvasText(page: Page) {
  await page.addInitScript(() => {
    const drawn = (window.__canvasText = new Set<string>());
    const fillText = CanvasRenderingContext2D.prototype.fillText;
    CanvasRenderingContext2D.prototype.fillText = function (text: string, ...rest: [number, number, number?]) {
      drawn.add(String(text));
      return fillText.call(this, text, ...rest);
    };
  });
}

/**
 * A uPlot chart (see recordCanvasText) drew: a canvas with a size and paint on it, these axis
 * labels drawn, and a legend that reads values under the mouse — values that change as it moves
 * across the plot, unless the data is rightly `flat` (every episode of the same length).
 */
export async function expectChartDrawn(page: Page, chart: Locator, axisLabels: string[], { flat = false } = {}) {
  const canvas = chart.locator("canvas");
  await expect(canvas).toBeVisible();
  const { width, height, painted } = await canvas.evaluate((c: HTMLCanvasElement) => {
    const data = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return { width: c.width, height: c.height, painted: n };
  });
  expect(width).toBeGreaterThan(100);
  expect(height).toBeGreaterThan(100);
  expect(painted).toBeGreaterThan(100);
  await expect.poll(() => page.evaluate(() => [...(window.__canvasText ?? [])])).toEqual(expect.arrayContaining(axisLabels));
  // The series' values at the cursor (the legend's first row is the x value itself). A point may
  // rightly have no values (a health check that found the device offline), so the cursor walks
  // across the plot: somewhere it reads values, and what it reads changes as it moves.
  const values = async () => (await chart.locator(".u-legend .u-series:not(:first-child) .u-value").allTextContents()).join(" | ");
  const seen = new Set<string>();
  await expect
    .poll(async () => {
      for (const fraction of [0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98]) {
        await hoverPlot(page, chart, fraction);
        seen.add(await values());
      }
      return [...seen];
    })
    .toEqual(expect.arrayContaining([expect.not.stringMatching(/^[–\s|]*$/)]));
  if (!flat) expect(seen.size).toBeGreaterThan(1);
}

/** Moves the mouse over a uPlot chart's plot area, `fraction` of the way across. */
export async function hoverPlot(page: Page, chart: Locator, fraction: number) {
  await chart.scrollIntoViewIfNeeded();
  const box = (await chart.locator(".u-over").boundingBox())!;
  await page.mouse.move(box.x + box.width * fraction, box.y + box.height / 2);
}

/**
 * Packs a LeRobot dataset folder as a .tar.gz and imports it through the datasets page's form;
 * resolves on the new dataset's page once its episodes are listed.
 */
export async function importDatasetArchive(page: Page, { folder, repoId, episodes }: { folder: string; repoId: string; episodes: number }) {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "gantry-e2e-import-"));
  const archive = nodePath.join(dir, `${nodePath.basename(folder)}.tar.gz`);
  execFileSync("tar", ["-czf", archive, "-C", nodePath.dirname(folder), nodePath.basename(folder)]);
  await page.goto("/datasets");
  await page.getByRole("button", { name: "Import dataset" }).click();
  await page.getByLabel("Repo id").fill(repoId);
  await page.getByLabel("Archive").setInputFiles(archive);
  await page.getByRole("button", { name: "Import dataset" }).last().click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(repoId, { timeout: 30_000 });
  await expect(page.locator("[data-episode]")).toHaveCount(episodes, { timeout: 60_000 });
}

/**
 * A WebGL canvas's own pixels as PNG (it keeps its drawing buffer), without anything drawn over
 * it on the page. Taken three animation frames after the call: the 3D views draw on every frame,
 * so whatever the page changed before the call (a toggle, a pose) is drawn on it.
 */
export async function canvasPng(canvas: Locator): Promise<Buffer> {
  const url = await canvas.evaluate(
    (c: HTMLCanvasElement) =>
      new Promise<string>((resolve) => {
        let frames = 0;
        const next = () => (++frames === 3 ? resolve(c.toDataURL("image/png")) : requestAnimationFrame(next));
        requestAnimationFrame(next);
      }),
  );
  return Buffer.from(url.slice(url.indexOf(",") + 1), "base64");
}
