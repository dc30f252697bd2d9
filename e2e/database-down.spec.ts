import { expect, test } from "@playwright/test";
import { signUp, unique } from "./helpers";

// The database is shared by every test here, so its outage is played in the browser instead:
// the health route answers as it does when Postgres is gone, and every API call stops
// answering. A portal that does not answer at all is said to be so, not blamed on the database.

test("says the database cannot be reached even when nothing else loads", async ({ page }) => {
  await signUp(page, { name: "Dora Down", email: `down-${unique()}@example.test`, password: "a long enough password" });
  await expect(page.getByRole("alert").filter({ hasText: "cannot reach its database" })).toHaveCount(0);

  await page.route("**/api/health", (route) =>
    route.fulfill({ status: 503, json: { status: "degraded", database: { ok: false, error: "connect ECONNREFUSED 127.0.0.1:5432" }, worker: { ok: false, lastSeen: null }, queue: { depth: null } } }),
  );
  await page.route("**/api/trpc/**", (route) => route.abort("connectionrefused"));
  await page.reload();
  await expect(page.getByRole("alert").filter({ hasText: "Gantry cannot reach its database" })).toBeVisible();

  await page.unrouteAll();
  await page.route("**/api/health", (route) => route.abort("connectionrefused"));
  await expect(page.getByRole("alert").filter({ hasText: "Gantry is not answering" })).toBeVisible({ timeout: 20_000 });
  await expect(page.getByRole("alert").filter({ hasText: "cannot reach its database" })).toHaveCount(0);

  await page.unrouteAll();
  await expect(page.getByRole("alert").filter({ hasText: /cannot reach its database|is not answering/ })).toHaveCount(0, { timeout: 20_000 });
});
