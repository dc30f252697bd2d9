/** Stands in for the page's origin where there is no window (server rendering, tests). */
const FALLBACK_ORIGIN = "http://gantry.invalid";

/**
 * Where to go after signing in: a path on this site, never another one. The URL parser decides
 * (it reads `/\evil.com` and `/\t/evil.com` as other hosts, as browsers do), not a prefix check.
 */
export function safeCallback(raw: string | null | undefined, origin: string = typeof window === "undefined" ? FALLBACK_ORIGIN : window.location.origin): string {
  if (!raw) return "/";
  let url: URL;
  try {
    url = new URL(raw, origin);
  } catch {
    return "/";
  }
  if (url.origin !== new URL(origin).origin) return "/";
  // `/.//evil.com` resolves here, to the path `//evil.com`, which would leave the site again.
  if (url.pathname.startsWith("//")) return "/";
  return `${url.pathname}${url.search}${url.hash}`;
}
