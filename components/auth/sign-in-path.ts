/**
 * The request header the proxy sets to the page asked for (path and query), so a server layout,
 * which is not told its path, can send an ended session to sign in and back to that page. The
 * proxy overwrites whatever a client sent, on the pages it sees; on an address it lets by (one
 * ending in a file name) a client's own value may arrive, so it is checked as a path here, and
 * the sign-in page checks it again (safeCallback).
 */
export const PAGE_HEADER = "x-gantry-page";

/** The sign-in page, coming back to `here` (a path on this site) once signed in. */
export function signInPath(here: string | null | undefined): string {
  const isPath = typeof here === "string" && here.startsWith("/") && !here.startsWith("//") && !here.startsWith("/\\");
  return !isPath || here === "/" ? "/sign-in" : `/sign-in?${new URLSearchParams({ callbackUrl: here })}`;
}
