import { NextResponse, type NextRequest } from "next/server";
import { env } from "@/server/env";
import { PAGE_HEADER, signInPath } from "@/components/auth/sign-in-path";
import { firebaseOrigins, pageContentSecurityPolicy, strictTransportSecurity } from "@/server/api/security-headers";

// next-auth's session cookie, plain over http and `__Secure-` over https; a large session is
// split into `.0`, `.1`, ...
const SESSION_COOKIES = ["next-auth.session-token", "__Secure-next-auth.session-token"];
/** Pages a person reaches before signing in. */
const PUBLIC_PAGES = /^\/(sign-in|sign-up|invite)(\/|$)/;

function hasSessionCookie(request: NextRequest): boolean {
  return SESSION_COOKIES.some((name) => request.cookies.has(name) || request.cookies.has(`${name}.0`));
}

function isHttps(request: NextRequest, publicUrl: string): boolean {
  const forwarded = request.headers.get("x-forwarded-proto")?.split(",")[0].trim();
  return forwarded === "https" || request.nextUrl.protocol === "https:" || publicUrl.startsWith("https://");
}

/** The page asked for: its path and query, less the router's own cache-busting parameter. */
function pageAddress(request: NextRequest): string {
  const search = new URLSearchParams(request.nextUrl.searchParams);
  search.delete("_rsc");
  return `${request.nextUrl.pathname}${search.size ? `?${search}` : ""}`;
}

/** Signed out on a portal page: off to sign in, keeping the page to come back to. */
function redirectToSignIn(request: NextRequest): NextResponse {
  return NextResponse.redirect(new URL(signInPath(pageAddress(request)), request.nextUrl));
}

/**
 * Every page: signed out on a portal page, off to sign in (only the cookie's presence is
 * checked here; the portal layout verifies the token itself). Otherwise the page gets a fresh
 * nonce and the Content Security Policy naming it: Next reads both from the request headers
 * and puts the nonce on its scripts.
 */
export function proxy(request: NextRequest) {
  const settings = env();
  const https = isHttps(request, settings.PUBLIC_URL);
  const isSignedOut = !PUBLIC_PAGES.test(request.nextUrl.pathname) && !hasSessionCookie(request);
  const nonce = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  const policy = pageContentSecurityPolicy({
    nonce,
    isDev: process.env.NODE_ENV === "development",
    isHttps: https,
    ...firebaseOrigins({ projectId: settings.FIREBASE_PROJECT_ID, authDomain: settings.FIREBASE_AUTH_DOMAIN, emulatorHost: settings.FIREBASE_AUTH_EMULATOR_HOST }),
  });
  let response: NextResponse;
  if (isSignedOut) {
    response = redirectToSignIn(request);
  } else {
    const headers = new Headers(request.headers);
    headers.set("x-nonce", nonce);
    headers.set("content-security-policy", policy);
    headers.set(PAGE_HEADER, pageAddress(request));
    response = NextResponse.next({ request: { headers } });
  }
  response.headers.set("content-security-policy", policy);
  if (https) response.headers.set("strict-transport-security", strictTransportSecurity);
  return response;
}

export const config = {
  // Every page; not the API (compatibility endpoints included: matching a route makes Next
  // buffer its request body, which would cap uploads; and a token client has no session
  // cookie, so it would be sent to sign in) nor Next's assets and static files. /status and
  // /health are the live-capture endpoints only for a request with an API token (next.config.ts).
  matcher: [
    "/((?!api/|api$|edge/|deployment/|upload-frame$|update-joint-angles$|get-ply$|stop-training$|reset$|status$|health$|_next/|.*\\.[^/]+$).*)",
    { source: "/status", missing: [{ type: "header", key: "authorization", value: "[Bb]earer .+" }] },
    { source: "/health", missing: [{ type: "header", key: "authorization", value: "[Bb]earer .+" }] },
  ],
};
