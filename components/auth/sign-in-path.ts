/**
 * The request header the proxy sets to the page asked for (path and query), so a server layout,
 * which is not told its path, can send an ended session to sign in and back to that page. The
 * proxy always overwrites it: a value a client sends never arrives.
 */
export const PAGE_HEADER = "x-gantry-page";

/** The sign-in page, coming back to `here` (a path on this site) once signed in. */
export function signInPath(here: string | null | undefined): string {
  return !here || here === "/" ? "/sign-in" : `/sign-in?${new URLSearchParams({ callbackUrl: here })}`;
}
