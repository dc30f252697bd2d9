import { expect, request as playwrightRequest, test } from "@playwright/test";
import pg from "pg";
import { expectChartDrawn, recordCanvasText, signUp, unique } from "./helpers";

// An instance admin opens Settings → Health and reads the queue, the jobs finished in the last
// hour, job durations and what each process holds open; the same figures come as Prometheus
// text from /api/metrics, which refuses a caller with no session and no token.

test("an instance admin reads the instance's health, drawn, and the same figures as Prometheus text", async ({ page, baseURL }) => {
  const email = `ops-${unique()}@example.test`;
  await signUp(page, { name: "Olga Ops", email, password: "a long enough password" });
  const db = new pg.Client({ connectionString: process.env.E2E_DATABASE_URL });
  await db.connect();
  try {
    // Made an instance admin, and given finished self-tests over the last hour for the charts
    // to show: one or two a minute, lasting 1 to 60 seconds.
    const { rows } = await db.query<{ orgId: string }>(`UPDATE "User" SET "isInstanceAdmin" = true WHERE email = $1 RETURNING "lastOrgId" AS "orgId"`, [email]);
    expect(rows, "the signed-up account, in the database this portal uses").toHaveLength(1);
    await db.query(
      `INSERT INTO "Job" ("id", "orgId", "kind", "status", "startedAt", "finishedAt")
       SELECT gen_random_uuid(), $1, 'system.selftest', 'succeeded', t - make_interval(secs => 1 + k), t
       FROM generate_series(0, 58) AS k, generate_series(1, 1 + k % 2) AS n, LATERAL (SELECT now() AT TIME ZONE 'UTC' - make_interval(mins => k) AS t) AS at`,
      [rows[0].orgId],
    );
  } finally {
    await db.end();
  }

  await recordCanvasText(page);
  await page.goto("/settings");
  await page.getByRole("link", { name: "Health" }).click();
  await expect(page).toHaveURL(/\/settings\/health$/);
  await expect(page.getByTestId("figure-workers")).toContainText(/Live workers\s*[1-9]/);
  await expect(page.getByTestId("figure-handoff")).toContainText("≤");

  await expectChartDrawn(page, page.getByTestId("chart-throughput"), ["time", "jobs per minute"]);
  const durations = page.getByTestId("chart-durations");
  await expect(durations.getByRole("img")).toBeVisible();
  await expect(durations).toContainText("seconds (log scale)");
  await expect(durations).toContainText(/Self-test \(\d+\)/);
  await expect(durations).toContainText("median");

  // This page's own event stream is held open by a web process, which reports it within seconds.
  await expect(page.getByTestId("process-table")).toContainText(/web:/, { timeout: 30_000 });

  const scraped = await page.request.get("/api/metrics");
  expect(scraped.status()).toBe(200);
  const text = await scraped.text();
  expect(text).toContain("# TYPE gantry_job_duration_seconds histogram");
  expect(text).toMatch(/gantry_job_duration_seconds_count\{kind="system.selftest",status="succeeded"\} [1-9]/);

  const anonymous = await playwrightRequest.newContext({ baseURL });
  const refused = await anonymous.get("/api/metrics");
  expect(refused.status()).toBe(401);
  expect((await refused.json()).error.message).toMatch(/METRICS_TOKEN/);
  await anonymous.dispose();
});
