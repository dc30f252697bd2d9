import { env } from "../env";
import { AppError } from "../errors";

// A browser attaches the session cookie to every request it sends to the portal, whichever
// page made it: a page on another port of the same host is the same site, so its forms and
// simple fetches arrive signed in. A state change made with the cookie must therefore come
// from the portal's own pages (Origin) and must not carry a type that a form or a simple
// fetch can send without the browser asking first. Browsers never attach an API token on
// their own, so requests carrying one (agents, scripts) are not checked here.

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** What a cross-site form, or a fetch without a CORS preflight, can send. */
const FORM_TYPES = new Set(["application/x-www-form-urlencoded", "multipart/form-data", "text/plain"]);
const SESSION_COOKIES = ["next-auth.session-token", "__Secure-next-auth.session-token"];

/** The body's media type, lower case and without parameters; null when none is given. */
export function mediaType(headers: Headers): string | null {
  const value = headers.get("content-type");
  return value ? value.split(";", 1)[0].trim().toLowerCase() : null;
}

/** Signed in by the session cookie rather than an API token (a token wins when both are sent). */
export function isCookieSession(headers: Headers): boolean {
  if (headers.has("authorization")) return false;
  const cookies = headers.get("cookie")?.split(/;\s*/) ?? [];
  return cookies.some((c) => SESSION_COOKIES.some((name) => c.startsWith(`${name}=`) || c.startsWith(`${name}.`)));
}

/** The page that sent the request, by its Origin (or, without one, the browser's Sec-Fetch-Site). */
function sendingOrigin(request: Request): { isOwn: boolean; origin: string | null } {
  const origin = request.headers.get("origin");
  if (!origin) return { isOwn: request.headers.get("sec-fetch-site") === "same-origin", origin: null };
  if (!URL.canParse(origin)) return { isOwn: false, origin };
  const { host, origin: normalised } = new URL(origin);
  if (normalised === new URL(env().PUBLIC_URL).origin) return { isOwn: true, origin };
  // Behind a proxy the portal answers under the name the browser used; the browser cannot forge these.
  const served = [request.headers.get("x-forwarded-host")?.split(",")[0].trim(), request.headers.get("host"), new URL(request.url).host];
  return { isOwn: served.some((h) => h && h.toLowerCase() === host.toLowerCase()), origin };
}

/**
 * Refuses a state change signed in by the session cookie that another page sent, or that
 * carries a form's content type. Costs no lookup and reads no body, so it runs first.
 */
export function checkCrossSite(request: Request): void {
  if (SAFE_METHODS.has(request.method) || !isCookieSession(request.headers)) return;
  const { isOwn, origin } = sendingOrigin(request);
  if (!isOwn) {
    const from = origin ? `a page on ${origin}` : "a page that did not say where it was (no Origin header)";
    throw new AppError("FORBIDDEN", `This request was sent by ${from}, not by the portal's own pages, so it was refused. Scripts and agents send an API token as \`Authorization: Bearer <token>\` instead of the session cookie`);
  }
  const type = mediaType(request.headers);
  if (type && FORM_TYPES.has(type)) {
    throw new AppError("UNSUPPORTED_MEDIA_TYPE", `Send the request as JSON (Content-Type: application/json); a signed-in request sent as ${type} is refused, because any page can send that type`);
  }
}
