import { expect, test } from "@playwright/test";

// Firebase sign-in in the browser: the Firebase JS SDK talks to the Auth emulator peer started
// by the global setup, and the portal verifies the ID token with firebase-admin.

test("signs in with Firebase and gets an account of its own", async ({ page }) => {
  await page.goto("/sign-in");
  await expect(page.getByRole("heading", { name: "Or sign in with Firebase" })).toBeVisible();
  await page.getByText("Firebase email and password").click();
  await page.getByLabel("Firebase email", { exact: true }).fill(process.env.E2E_FIREBASE_EMAIL!);
  await page.getByLabel("Firebase password", { exact: true }).fill("not the password");
  await page.getByRole("button", { name: "Sign in with Firebase" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "Firebase did not accept that email and password" })).toBeVisible();

  await page.getByLabel("Firebase password", { exact: true }).fill(process.env.E2E_FIREBASE_PASSWORD!);
  await page.getByRole("button", { name: "Sign in with Firebase" }).click();
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Firebase User's lab");
});

test("refuses a forged Firebase token at the server", async ({ page, request }) => {
  await page.goto("/sign-in");
  const csrf = await (await request.get("/api/auth/csrf")).json();
  const forged = [Buffer.from('{"alg":"none"}').toString("base64url"), Buffer.from(JSON.stringify({ aud: "someone-else", iss: "https://securetoken.google.com/someone-else", sub: "x", exp: 4102444800, iat: 1 })).toString("base64url"), ""].join(".");
  const res = await request.post("/api/auth/callback/firebase", { form: { idToken: forged, csrfToken: csrf.csrfToken, json: "true" } });
  // next-auth answers a refused credentials sign-in with the sign-in page's URL and the reason.
  const { url } = (await res.json()) as { url: string };
  const error = new URL(url).searchParams.get("error");
  expect(error).toMatch(/Firebase sign-in token .*(not valid for this Gantry|sign in again)/);
});
