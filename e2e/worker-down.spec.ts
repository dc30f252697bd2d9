import { expect, test } from "@playwright/test";
import pg from "pg";
import { signUp, unique } from "./helpers";

// Pauses the real worker process (found through its heartbeat row) and watches the portal
// say so, then resumes it. Runs last: jobs wait while the worker is paused.

test("shows a banner while the worker is down, and clears it when it is back", async ({ page, request }) => {
  const db = new pg.Client({ connectionString: process.env.E2E_DATABASE_URL });
  await db.connect();
  const { rows } = await db.query<{ pid: number }>(`SELECT DISTINCT pid FROM "WorkerHeartbeat"`);
  await db.end();
  expect(rows.length).toBeGreaterThan(0);
  await signUp(page, { name: "Hal Health", email: `health-${unique()}@example.test`, password: "a long enough password" });
  await expect(page.getByRole("alert").filter({ hasText: "worker is not running" })).toHaveCount(0);
  try {
    for (const { pid } of rows) process.kill(pid, "SIGSTOP");
    await expect(page.getByRole("alert").filter({ hasText: "The worker is not running" })).toBeVisible({ timeout: 40_000 });
    const health = await request.get("/api/health");
    expect(health.status()).toBe(503);
    expect((await health.json()).worker.ok).toBe(false);
  } finally {
    for (const { pid } of rows) process.kill(pid, "SIGCONT");
  }
  await expect(page.getByRole("alert").filter({ hasText: "The worker is not running" })).toHaveCount(0, { timeout: 40_000 });
  expect((await request.get("/api/health")).status()).toBe(200);
});
