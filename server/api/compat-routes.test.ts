import { getRewrittenUrl, unstable_doesMiddlewareMatch, unstable_getResponseFromNextConfig } from "next/experimental/testing/server";
import { describe, expect, it } from "vitest";
import nextConfig from "../../next.config";
import { config as proxyConfig } from "../../proxy";

// The earlier systems' endpoints reach their route handlers through next.config.ts's rewrites,
// and stay out of proxy.ts (which would buffer an upload and send a token client to sign in).

const base = "http://localhost:3000";
const token = { authorization: "Bearer gty_0123abcd_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" };

async function rewrittenTo(path: string, headers: Record<string, string> = {}): Promise<string | null> {
  const response = await unstable_getResponseFromNextConfig({ url: `${base}${path}`, nextConfig, headers });
  const to = getRewrittenUrl(response);
  return to ? new URL(to).pathname : null;
}

const proxyRuns = (path: string, headers: Record<string, string> = {}) => unstable_doesMiddlewareMatch({ config: proxyConfig, url: `${base}${path}`, headers });

describe("the live-capture endpoints of the earlier system", () => {
  it("always answer the names no page of the portal uses, with or without a token", async () => {
    for (const name of ["upload-frame", "update-joint-angles", "get-ply", "stop-training", "reset"]) {
      expect(await rewrittenTo(`/${name}`), name).toBe(`/api/compat/capture/${name}`);
      expect(await rewrittenTo(`/${name}`, token), name).toBe(`/api/compat/capture/${name}`);
      expect(proxyRuns(`/${name}`), name).toBe(false);
      expect(proxyRuns(`/${name}`, token), name).toBe(false);
    }
  });

  it("answer /status and /health only for a request with an API token; others get what they got before", async () => {
    for (const name of ["status", "health"]) {
      expect(await rewrittenTo(`/${name}`, token), name).toBe(`/api/compat/capture/${name}`);
      expect(proxyRuns(`/${name}`, token), name).toBe(false);
      expect(await rewrittenTo(`/${name}`), name).toBeNull();
      expect(await rewrittenTo(`/${name}`, { authorization: "Basic dXNlcjpwYXNz" }), name).toBeNull();
      expect(proxyRuns(`/${name}`), name).toBe(true);
    }
    // The portal's own health check does not move.
    expect(await rewrittenTo("/api/health", token)).toBeNull();
  });

  it("leave the portal's pages and the other compatibility routes as they were", async () => {
    expect(await rewrittenTo("/edge/upload-complete")).toBe("/api/compat/edge/upload-complete");
    expect(await rewrittenTo("/deployment/devices")).toBe("/api/compat/deployment/devices");
    for (const page of ["/", "/settings/tokens", "/robots", "/reset-password", "/statuses", "/health/checks"]) {
      expect(await rewrittenTo(page, token), page).toBeNull();
      expect(proxyRuns(page), page).toBe(true);
    }
  });
});
