import http from "node:http";
import type { AddressInfo } from "node:net";
import { expect, test } from "@playwright/test";
import { E2E_PORT } from "../playwright.config";
import { signUp, unique } from "./helpers";

// A page on another port of this host is the same site as the portal, so the browser sends the
// portal's session cookie with whatever that page makes it send. Signed in in one tab, the
// person opens such a page in another: it tries a text/plain fetch that adds a device, a
// multipart form that starts a self-test, and frames the API tokens page. None of it works,
// while the portal itself still renders and runs under its Content Security Policy.

const portal = `http://localhost:${E2E_PORT}`;

function otherSitePage(): string {
  const device = JSON.stringify({ name: "planted", host: "192.0.2.66", username: "robot", password: "planted-secret" });
  return `<!doctype html>
<html><head><title>Another page on this host</title></head><body>
<h1>Free robot tips</h1>
<form id="selftest" method="POST" enctype="multipart/form-data" action="${portal}/api/trpc/system.startSelftest" target="sink">
  <input name="steps" value="1"><input name="stepMs" value="0">
</form>
<iframe name="sink" title="sink"></iframe>
<iframe id="framed" title="framed" src="${portal}/settings/tokens" width="800" height="600"></iframe>
<script>
  window.addDevice = () => fetch(${JSON.stringify(`${portal}/deployment/devices`)}, {
    method: "POST", mode: "no-cors", credentials: "include",
    headers: { "content-type": "text/plain" }, body: ${JSON.stringify(device)},
  }).then(() => "sent", (error) => String(error));
</script>
</body></html>`;
}

test("a page on another port of the same host cannot act with the visitor's session", async ({ browser }) => {
  const other = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(otherSitePage());
  });
  await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
  const otherOrigin = `http://localhost:${(other.address() as AddressInfo).port}`;
  const context = await browser.newContext();
  const page = await context.newPage();
  const policyErrors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Content-Security-Policy/i.test(m.text())) policyErrors.push(m.text());
  });

  try {
    await test.step("sign up; the portal's pages carry their security headers and render under them", async () => {
      await signUp(page, { name: "Sam Signed-In", email: `csrf-${unique()}@example.test`, password: "correct horse battery" });
      const tokens = await page.goto("/settings/tokens");
      const headers = tokens!.headers();
      expect(headers["content-security-policy"]).toMatch(/script-src 'self' 'nonce-[^']+' 'strict-dynamic'/);
      expect(headers["content-security-policy"]).toContain("frame-ancestors 'none'");
      expect(headers["x-frame-options"]).toBe("DENY");
      expect(headers["x-content-type-options"]).toBe("nosniff");
      expect(headers["referrer-policy"]).toBe("same-origin");
      await expect(page.getByRole("button", { name: "Create token" })).toBeVisible();
      // The page's own scripts run: making a token works (a JSON mutation from the portal's origin).
      await page.getByLabel("Name").fill("still works");
      await page.getByLabel(/^read/).check();
      await page.getByRole("button", { name: "Create token" }).click();
      await expect(page.getByLabel("New API token")).toHaveValue(/^gty_/);

      const api = await page.request.get("/api/health");
      expect(api.headers()["content-security-policy"]).toBe("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
      expect(api.headers()["x-content-type-options"]).toBe("nosniff");
      expect(api.headers()["x-frame-options"]).toBe("DENY");
    });

    const otherPage = await context.newPage();
    await test.step("the other page loads, framing the tokens page, which the browser refuses to show", async () => {
      const framed = otherPage.waitForResponse((r) => r.url() === `${portal}/settings/tokens`);
      await otherPage.goto(otherOrigin);
      const response = await framed;
      // The frame was fetched with the visitor's cookie (the page rendered for them) but not shown.
      expect(response.status()).toBe(200);
      expect(response.headers()["x-frame-options"]).toBe("DENY");
      expect(response.headers()["content-security-policy"]).toContain("frame-ancestors 'none'");
      await expect(otherPage.getByRole("heading", { name: "Free robot tips" })).toBeVisible();
      await expect.poll(() => otherPage.frames().some((f) => f.url().startsWith("chrome-error://"))).toBe(true);
      await expect(otherPage.frameLocator("#framed").getByRole("button", { name: "Create token" })).toHaveCount(0);
    });

    await test.step("its text/plain fetch to add a device is refused and adds nothing", async () => {
      const answer = otherPage.waitForResponse((r) => r.url() === `${portal}/deployment/devices` && r.request().method() === "POST");
      expect(await otherPage.evaluate(() => (window as unknown as { addDevice: () => Promise<string> }).addDevice())).toBe("sent");
      const res = await answer;
      expect((await res.request().allHeaders())["referer"]).toBe(`${otherOrigin}/`);
      expect([403, 415]).toContain(res.status());
      const devices = await page.request.get("/deployment/devices");
      expect(devices.status()).toBe(200);
      expect(await devices.json()).toEqual([]);
    });

    await test.step("its multipart form to the self-test mutation is refused and starts nothing", async () => {
      const answer = otherPage.waitForResponse((r) => r.url().startsWith(`${portal}/api/trpc/system.startSelftest`));
      await otherPage.locator("#selftest").evaluate((form: HTMLFormElement) => form.submit());
      const res = await answer;
      expect((await res.request().allHeaders())["content-type"]).toMatch(/^multipart\/form-data/);
      expect([403, 415]).toContain(res.status());
      const jobs = await page.request.get(`/api/trpc/jobs.list?input=${encodeURIComponent(JSON.stringify({ json: {} }))}`);
      expect(jobs.status()).toBe(200);
      expect((await jobs.json()).result.data.json.items).toEqual([]);
    });

    await test.step("the portal's own pages still start a self-test, with no policy errors on the way", async () => {
      await page.goto("/");
      await page.getByRole("button", { name: "Run self-test" }).click();
      await expect(page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
      expect(policyErrors).toEqual([]);
    });
  } finally {
    await context.close();
    await new Promise<void>((resolve) => other.close(() => resolve()));
  }
});

test("an anonymous 100 MB body is answered before it is sent", async () => {
  // Headers announcing 100 MB, then only the first 64 KiB: the answer must come without the rest.
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request(`${portal}/api/trpc/auth.signUp`, { method: "POST", headers: { "content-type": "application/json", "content-length": String(100 * 1024 * 1024) } }, (res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      req.destroy();
    });
    req.on("error", (error) => ((error as NodeJS.ErrnoException).code === "ECONNRESET" ? undefined : reject(error)));
    req.write(Buffer.alloc(64 * 1024, 0x20));
    setTimeout(() => reject(new Error("no answer while the rest of the body was still unsent")), 20_000).unref();
  });
  expect([401, 413]).toContain(status);
});
