import { expect, test, type Page } from "@playwright/test";
import { signUp, unique } from "./helpers";

// Sign-in takes two things from its URL: where to go afterwards and an error code. A deep link
// must survive signing in; neither value may send someone elsewhere or put words on the page.

async function submitSignIn(page: Page, { email, password }: { email: string; password: string }) {
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

test("a deep link comes back after signing in; sign-in trusts neither its callbackUrl nor its error text", async ({ browser, baseURL }) => {
  const person = { name: "Dee Link", email: `deep-${unique()}@example.test`, password: "a long enough password" };
  const setup = await browser.newContext();
  await signUp(await setup.newPage(), person);
  await setup.close();

  await test.step("a signed-out deep link returns to the same page after signing in", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto("/settings/tokens?from=bookmark");
    await expect(page).toHaveURL(/\/sign-in\?callbackUrl=%2Fsettings%2Ftokens%3Ffrom%3Dbookmark$/);
    await submitSignIn(page, person);
    await expect(page).toHaveURL(/\/settings\/tokens\?from=bookmark$/);
    await expect(page.getByRole("button", { name: "Create token" })).toBeVisible();
    await context.close();
  });

  await test.step("an ended session (its cookie still there) also comes back to the page it asked for", async () => {
    // A cookie the portal no longer accepts, as after "sign out everywhere" or a password change;
    // and a page header sent by the client, which the portal replaces with the real page.
    const context = await browser.newContext({ extraHTTPHeaders: { "x-gantry-page": "//evil.example" } });
    await context.addCookies([{ name: "next-auth.session-token", value: "ended-session", url: baseURL! }]);
    const page = await context.newPage();
    await page.goto("/jobs?status=failed");
    await expect(page).toHaveURL(/\/sign-in\?callbackUrl=%2Fjobs%3Fstatus%3Dfailed$/);
    await submitSignIn(page, person);
    await expect(page).toHaveURL(/\/jobs\?status=failed$/);
    await context.close();
  });

  await test.step("a callbackUrl pointing at another site leads home instead", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`/sign-in?callbackUrl=${encodeURIComponent("/\\evil.example")}`);
    await submitSignIn(page, person);
    await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
    expect(page.url()).toBe(`${baseURL}/`);
    await context.close();
  });

  await test.step("only next-auth's own error codes are shown, in our words", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`/sign-in?error=${encodeURIComponent("Your account is locked; call +1 555 0100")}`);
    // The providers have loaded: the form is live, and would show an error by now.
    await expect(page.getByRole("heading", { name: "Or sign in with Firebase" })).toBeVisible();
    await expect(page.getByText("call +1 555 0100")).toHaveCount(0);
    // Next's route announcer is an empty alert of its own; ours would have words in it.
    await expect(page.getByRole("alert").filter({ hasText: /\S/ })).toHaveCount(0);
    await page.goto("/sign-in?error=SessionRequired");
    await expect(page.getByRole("alert").filter({ hasText: "Sign in to continue" })).toBeVisible();
    await context.close();
  });
});
