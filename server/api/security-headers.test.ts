import { NextRequest } from "next/server";
import { unstable_doesMiddlewareMatch, unstable_getResponseFromNextConfig } from "next/experimental/testing/server";
import { describe, expect, it } from "vitest";
import nextConfig from "../../next.config";
import { config as proxyConfig, proxy } from "../../proxy";

// What a page and an API answer carry, through the two places that set it: proxy.ts (pages:
// a Content Security Policy with a fresh nonce) and next.config.ts (every response: framing,
// sniffing, referrer; API answers: a policy that lets nothing run). The browser test checks
// the same on the running portal.

const base = "http://localhost:3000";
const cookie = "next-auth.session-token=anything";

async function configHeaders(path: string, headers: Record<string, string> = {}): Promise<Headers> {
  return (await unstable_getResponseFromNextConfig({ url: `${base}${path}`, nextConfig, headers })).headers;
}

function runProxy(path: string, headers: Record<string, string> = {}) {
  return proxy(new NextRequest(`${base}${path}`, { headers }));
}

const nonceOf = (policy: string | null) => /'nonce-([A-Za-z0-9+/=]+)'/.exec(policy ?? "")?.[1];

describe("security headers", () => {
  it("give a page a policy whose scripts need this response's nonce, and no framing", async () => {
    expect(unstable_doesMiddlewareMatch({ config: proxyConfig, url: `${base}/settings/tokens` })).toBe(true);
    const res = runProxy("/settings/tokens", { cookie });
    const policy = res.headers.get("content-security-policy");
    expect(policy).toMatch(/script-src 'self' 'nonce-[^']+' 'strict-dynamic' 'wasm-unsafe-eval'(;|$)/);
    expect(policy).toContain("frame-ancestors 'none'");
    expect(policy).toContain("object-src 'none'");
    // WebAssembly may compile; JavaScript may not be eval'd.
    expect(policy).not.toMatch(/'unsafe-eval'/);
    // Next reads the nonce from the request's headers and puts it on its scripts.
    expect(res.headers.get("x-middleware-request-x-nonce")).toBe(nonceOf(policy));
    expect(res.headers.get("x-middleware-request-content-security-policy")).toBe(policy);
    expect(nonceOf(runProxy("/settings/tokens", { cookie }).headers.get("content-security-policy"))).not.toBe(nonceOf(policy));

    const common = await configHeaders("/settings/tokens");
    expect(Object.fromEntries(["x-frame-options", "x-content-type-options", "referrer-policy"].map((h) => [h, common.get(h)]))).toEqual({
      "x-frame-options": "DENY",
      "x-content-type-options": "nosniff",
      "referrer-policy": "same-origin",
    });
    expect(common.get("content-security-policy")).toBeNull(); // the page's own comes from the proxy
  });

  it("cover the pages people see signed out, and the redirect to sign in", async () => {
    for (const path of ["/sign-in", "/sign-up", "/invite/abc"]) {
      expect(unstable_doesMiddlewareMatch({ config: proxyConfig, url: `${base}${path}` })).toBe(true);
      const res = runProxy(path);
      expect(res.headers.get("location")).toBeNull();
      expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    }
    const redirect = runProxy("/settings/tokens");
    expect(redirect.headers.get("location")).toBe(`${base}/sign-in?callbackUrl=%2Fsettings%2Ftokens`);
    expect(redirect.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
  });

  it("give an API answer a policy that lets nothing run or frame it, without the proxy reading its body", async () => {
    for (const path of ["/api/trpc/models.list", "/api/models/x/uploads", "/deployment/devices", "/edge/upload-complete"]) {
      // A path the proxy matches has its request body buffered by Next: uploads must stay out.
      expect(unstable_doesMiddlewareMatch({ config: proxyConfig, url: `${base}${path}` }), path).toBe(false);
      const headers = await configHeaders(path);
      expect(headers.get("content-security-policy"), path).toBe("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
      expect(headers.get("x-frame-options"), path).toBe("DENY");
      expect(headers.get("x-content-type-options"), path).toBe("nosniff");
    }
    expect(unstable_doesMiddlewareMatch({ config: proxyConfig, url: `${base}/favicon.svg` })).toBe(false);
    expect((await configHeaders("/favicon.svg")).get("x-content-type-options")).toBe("nosniff");
  });

  it("ask for HTTPS from then on only when served over HTTPS", async () => {
    expect((await configHeaders("/api/health")).get("strict-transport-security")).toBeNull();
    expect((await configHeaders("/api/health", { "x-forwarded-proto": "https" })).get("strict-transport-security")).toBe("max-age=31536000; includeSubDomains");
    expect(runProxy("/sign-in").headers.get("strict-transport-security")).toBeNull();
    const https = runProxy("/sign-in", { "x-forwarded-proto": "https" });
    expect(https.headers.get("strict-transport-security")).toBe("max-age=31536000; includeSubDomains");
    expect(https.headers.get("content-security-policy")).toContain("upgrade-insecure-requests");
  });
});
