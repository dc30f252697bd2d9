import { expect, test } from "@playwright/test";
import { signUp, unique } from "./helpers";

// The API reference as a person reads it: routes grouped by area, one opened to its
// parameters, body and example; the document itself is there for tools, without signing in.

test("the API reference lists the routes by area and opens one to its example", async ({ page, request }) => {
  const refused: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) refused.push(m.text());
  });
  await signUp(page, { name: "Ada Script", email: `api-${unique()}@example.test`, password: "a long enough password" });

  await page.goto("/settings");
  await page.getByRole("link", { name: "API reference" }).click();
  await expect(page).toHaveURL(/\/settings\/api$/);
  await expect(page.getByRole("heading", { name: "Calling the API" })).toBeVisible();
  for (const area of ["Captures", "Earlier edge clients", "Earlier plug & play API"]) await expect(page.getByRole("heading", { name: area, exact: true })).toBeVisible();

  const captures = page.getByRole("region", { name: "Captures" });
  const joints = captures.locator("details#postCaptureJoints");
  await joints.locator(":scope > summary").click();
  await expect(joints.getByRole("row", { name: /^joint_angles\*/ })).toContainText("number[]");
  await expect(joints.getByText("operator+")).toBeVisible();
  await expect(joints.locator("pre").filter({ hasText: "curl -X POST" })).toContainText('"joint_angles":[0,-0.52,1.05,0.26,0,0.35]');

  const link = page.getByRole("link", { name: "/api/openapi.json" });
  await expect(link).toHaveAttribute("href", "/api/openapi.json");
  const doc = await request.get("/api/openapi.json");
  expect(doc.status()).toBe(200);
  const json = await doc.json();
  expect(json.openapi).toBe("3.1.0");
  expect(json.paths["/edge/upload-complete"].post.operationId).toBe("compatEdgeUploadComplete");
  expect(refused).toEqual([]);
});
