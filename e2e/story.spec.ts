import { expect, test } from "@playwright/test";
import { percentOf, signUp, unique } from "./helpers";

// The story: sign up, invite a viewer, make an API token, watch a self-test move live
// in two tabs, cancel another job, and find all of it in the audit log.

/** Runs in a page: writes down every job percentage it draws, in window.drawnPercents. */
function recordPercents() {
  const drawn: number[] = [];
  (window as unknown as { drawnPercents: number[] }).drawnPercents = drawn;
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('[data-testid="job-percent"]')) drawn.push(Number(el.textContent?.replace("%", "")));
  }).observe(document, { subtree: true, childList: true, characterData: true });
}

test("a team sets up Gantry and watches a job run live", async ({ browser, request }) => {
  const owner = { name: "Olga Owner", email: `owner-${unique()}@example.test`, password: "correct horse battery" };
  const ownerContext = await browser.newContext();
  const page = await ownerContext.newPage();

  await test.step("sign up and land on the overview", async () => {
    await signUp(page, owner);
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("Olga Owner's lab");
    await expect(page.getByText("Database")).toBeVisible();
  });

  let inviteUrl = "";
  await test.step("invite a viewer by link", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Settings", exact: true }).click();
    await expect(page.getByRole("heading", { name: "Members" })).toBeVisible();
    await page.getByLabel("Role", { exact: true }).selectOption("viewer");
    await page.getByRole("button", { name: "Create invite link" }).click();
    inviteUrl = await page.getByLabel("Invite link").inputValue();
    expect(inviteUrl).toMatch(/\/invite\/[\w-]{20,}$/);
  });

  const viewerContext = await browser.newContext();
  const viewerPage = await viewerContext.newPage();
  await test.step("the viewer accepts the invite and can only look", async () => {
    await viewerPage.goto(inviteUrl);
    await expect(viewerPage.getByText("as viewer")).toBeVisible();
    await viewerPage.getByRole("link", { name: "Create an account to join" }).click();
    await expect(viewerPage.getByText("You are joining")).toBeVisible();
    await viewerPage.getByLabel("Name").fill("Vic Viewer");
    await viewerPage.getByLabel("Email").fill(`viewer-${unique()}@example.test`);
    await viewerPage.getByLabel("Password").fill("another good passphrase");
    await viewerPage.getByRole("button", { name: "Create account" }).click();
    await expect(viewerPage.getByRole("heading", { level: 1 })).toHaveText("Olga Owner's lab");
    await expect(viewerPage.getByRole("combobox", { name: "Organisation" })).toContainText("(viewer)");
    await expect(viewerPage.getByRole("button", { name: "Run self-test" })).toHaveCount(0);
    await page.reload();
    await expect(page.locator("[data-member]")).toHaveCount(2);
  });

  let token = "";
  await test.step("create an API token, shown once", async () => {
    await page.getByRole("link", { name: "API tokens" }).click();
    await page.getByLabel("Name").fill("lab-laptop agent");
    await page.getByLabel(/^write/).check();
    await page.getByRole("button", { name: "Create token" }).click();
    token = await page.getByLabel("New API token").inputValue();
    expect(token).toMatch(/^gty_[0-9a-f]{8}_/);
    await page.reload();
    await expect(page.getByLabel("New API token")).toHaveCount(0);
    await expect(page.locator('[data-token="lab-laptop agent"]')).toContainText(token.slice(0, 12));
    const res = await request.get("/api/trpc/jobs.list?input=" + encodeURIComponent(JSON.stringify({ json: {} })), { headers: { authorization: `Bearer ${token}` } });
    expect(res.status()).toBe(200);
    const anonymous = await request.get("/api/trpc/jobs.list?input=" + encodeURIComponent(JSON.stringify({ json: {} })));
    expect(anonymous.status()).toBe(401);
  });

  await test.step("start the self-test and watch it move live in two tabs", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Overview", exact: true }).click();
    // Every percentage each tab draws is written down as it is drawn (the pages move client-side,
    // so the first tab's record lasts; the second tab's starts as it loads).
    await page.evaluate(recordPercents);
    await page.getByRole("button", { name: "Run self-test" }).click();
    await expect(page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
    const secondTab = await ownerContext.newPage();
    // Browsers allow six connections per host: a tab holds one event stream, whatever it shows.
    const streams = new Set<string>();
    secondTab.on("request", (r) => {
      if (r.url().includes("/api/trpc/") && r.url().includes(".on")) streams.add(new URL(r.url()).pathname);
    });
    await secondTab.addInitScript(recordPercents);
    await secondTab.goto(page.url());
    // Read often, and until the end: on a busy machine the steps can pass in well under a second.
    const seen = new Set<number>();
    for (const tab of [page, secondTab]) {
      await expect.poll(async () => {
        const p = await percentOf(tab);
        seen.add(p);
        return p;
      }, { timeout: 20_000, intervals: [50] }).toBeGreaterThan(0);
    }
    for (const tab of [page, secondTab]) {
      await expect.poll(async () => {
        seen.add(await percentOf(tab));
        return tab.getByTestId("job-status").textContent();
      }, { timeout: 30_000, intervals: [50] }).toBe("succeeded");
      expect(await percentOf(tab)).toBe(100);
    }
    // Moved through intermediate values, not only 0 and 100.
    for (const tab of [page, secondTab]) for (const p of await tab.evaluate(() => (window as unknown as { drawnPercents: number[] }).drawnPercents)) seen.add(p);
    expect([...seen].some((p) => p > 0 && p < 100), `drawn: ${[...seen].join(", ")}`).toBe(true);
    expect([...streams]).toEqual(["/api/trpc/jobs.onOrgEvents"]);
    await secondTab.reload();
    // The self-test checks what Gantry needs, one named pass line each.
    for (const check of ["Database", "Worker", "ffmpeg and encoders", "onnxruntime", "Model server", "Disk space", "SSH client"]) {
      await expect(secondTab.getByRole("list", { name: "Job log" })).toContainText(`${check}: pass — `);
    }
    await expect(secondTab.getByRole("list", { name: "Job log" })).toContainText("All 7 checks passed");
    await expect(secondTab.getByRole("list", { name: "Job log" })).toContainText("Finished");
    await secondTab.close();
  });

  await test.step("the viewer sees the jobs list update live", async () => {
    await viewerPage.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Jobs", exact: true }).click();
    await expect(viewerPage.locator("[data-job-id]")).toHaveCount(1);
  });

  await test.step("cancel another self-test", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Jobs", exact: true }).click();
    // The checks end within seconds; thirty timed steps stay running long enough to cancel.
    const started = await page.request.post("/api/trpc/system.startSelftest", { headers: { origin: new URL(page.url()).origin, "content-type": "application/json" }, data: { json: { steps: 30, stepMs: 1000 } } });
    expect(started.status()).toBe(200);
    const { jobId } = (await started.json()).result.data.json as { jobId: string };
    await expect(viewerPage.locator("[data-job-id]")).toHaveCount(2);
    await page.locator(`[data-job-id="${jobId}"] a`).click();
    await expect(page.getByTestId("job-status")).toHaveText("running", { timeout: 15_000 });
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Cancel job" }).click();
    await expect(page.getByTestId("job-status")).toHaveText("cancelled", { timeout: 15_000 });
    await expect(page.getByRole("list", { name: "Job log" })).toContainText("Cancel requested by Olga Owner");
  });

  await test.step("the Jobs page says when older jobs are not shown, and shows them on request", async () => {
    const origin = new URL(page.url()).origin;
    for (let i = 0; i < 50; i++) {
      const started = await page.request.post("/api/trpc/system.startSelftest", { headers: { origin, "content-type": "application/json" }, data: { json: { steps: 1, stepMs: 0 } } });
      expect(started.status()).toBe(200);
    }
    await page.goto("/jobs");
    const rows = page.getByRole("table", { name: "Jobs" }).locator("[data-job-id]");
    await expect(rows).toHaveCount(50);
    await expect(page.getByText("The newest 50 jobs.")).toBeVisible();
    await page.getByRole("button", { name: "Show 50 older" }).click();
    await expect(rows).toHaveCount(52);
    await expect(page.getByText("52 jobs, all there are.")).toBeVisible();
    await expect(page.getByRole("button", { name: "Show 50 older" })).toHaveCount(0);
  });

  await test.step("find all of it in the audit log", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Settings", exact: true }).click();
    await page.getByRole("link", { name: "Audit log" }).click();
    for (const action of ["auth.sign_up", "invite.create", "invite.accept", "token.create", "job.start", "job.cancel"]) {
      await expect(page.locator(`[data-action="${action}"]`).first()).toBeVisible();
    }
    await page.getByLabel("Action").selectOption("job.cancel");
    await expect(page.locator("[data-action]")).toHaveCount(1);
  });

  await test.step("switch to dark mode", async () => {
    await page.getByLabel("Colour theme").selectOption("dark");
    await expect(page.locator("html")).toHaveClass(/dark/);
    await page.reload();
    await expect(page.locator("html")).toHaveClass(/dark/);
  });
});
