import { NextResponse, type NextRequest } from "next/server";

// next-auth's session cookie, plain over http and `__Secure-` over https; a large session is
// split into `.0`, `.1`, ...
const SESSION_COOKIES = ["next-auth.session-token", "__Secure-next-auth.session-token"];

function hasSessionCookie(request: NextRequest): boolean {
  return SESSION_COOKIES.some((name) => request.cookies.has(name) || request.cookies.has(`${name}.0`));
}

/**
 * Signed out on a portal page: off to sign in, keeping the page to come back to. Only the
 * cookie's presence is checked here; the portal layout verifies the token itself.
 */
export function proxy(request: NextRequest) {
  if (hasSessionCookie(request)) return NextResponse.next();
  const search = new URLSearchParams(request.nextUrl.searchParams);
  search.delete("_rsc"); // the router's own cache-busting parameter, not part of the page
  const here = `${request.nextUrl.pathname}${search.size ? `?${search}` : ""}`;
  const signIn = request.nextUrl.clone();
  signIn.pathname = "/sign-in";
  signIn.search = here === "/" ? "" : `?${new URLSearchParams({ callbackUrl: here })}`;
  return NextResponse.redirect(signIn);
}

export const config = {
  // Every page but the public ones (sign-in, sign-up, invites), the API (compatibility
  // endpoints included) and static files.
  matcher: ["/((?!api/|api$|edge/|deployment/|_next/|sign-in/|sign-in$|sign-up/|sign-up$|invite/|.*\\.[^/]+$).*)"],
};
