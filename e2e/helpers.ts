import { expect, type Page } from "@playwright/test";

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
