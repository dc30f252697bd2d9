import { expect, test } from "@playwright/test";
import { signUp, unique } from "./helpers";

// The database is shared by every test here, so its outage is played in the browser instead:
// the health route and every API call stop answering, as they do when Postgres is gone.

test("says the database cannot be reached even when nothing else loads", async ({ page }) => {
  await signUp(page, { name: "Dora Down", email: `down-${unique()}@example.test`, password: "a long enough password" });
  await expect(page.getByRole("alert").filter({ hasText: "cannot reach its database" })).toHaveCount(0);

  await page.route("**/api/health", (route) => route.abort("connectionrefused"));
  await page.route("**/api/trpc/**", (route) => route.abort("connectionrefused"));
  await page.reload();
  await expect(page.getByRole("alert").filter({ hasText: "Gantry cannot reach its database" })).toBeVisible();

  await page.unrouteAll();
  await expect(page.getByRole("alert").filter({ hasText: "Gantry cannot reach its database" })).toHaveCount(0, { timeout: 20_000 });
});
