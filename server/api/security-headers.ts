// The headers every response carries so that browsers hold the portal's pages and answers to
// their own origin: no framing by other pages (clickjacking), no guessing of content types,
// no full addresses (invite tokens are in paths) sent to other sites, and, on pages, a
// Content Security Policy whose scripts must carry the request's nonce.
// No imports: next.config.ts reads this file too.

/** On every response, pages, API answers and static files alike. */
export const commonSecurityHeaders: ReadonlyArray<{ key: string; value: string }> = [
  { key: "X-Frame-Options", value: "DENY" },
  { key: "X-Content-Type-Options", value: "nosniff" },
  { key: "Referrer-Policy", value: "same-origin" },
  { key: "Permissions-Policy", value: "camera=(), microphone=(), geolocation=(), payment=()" },
];

/** API answers are data, never a document: nothing in them may run, load or be framed. */
export const apiContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** Only over HTTPS: a browser remembers to use nothing else for this host for a year. */
export const strictTransportSecurity = "max-age=31536000; includeSubDomains";

export interface PagePolicyOptions {
  nonce: string;
  /** `next dev` rebuilds with eval; a production build never needs it. */
  isDev: boolean;
  isHttps: boolean;
  /** Other origins the browser may call (Firebase sign-in), e.g. "https://identitytoolkit.googleapis.com". */
  connectTo?: string[];
  /** Other origins the page may frame (Firebase's sign-in helper). */
  frames?: string[];
}

/**
 * The pages' policy. Scripts: only those carrying the nonce, and what they load themselves
 * ('strict-dynamic'); Next puts the nonce on its own scripts when it finds it in the request's
 * policy. Styles may be inline: React renders style attributes, which a nonce cannot cover.
 */
export function pageContentSecurityPolicy({ nonce, isDev, isHttps, connectTo = [], frames = [] }: PagePolicyOptions): string {
  const directives = [
    "default-src 'self'",
    // 'wasm-unsafe-eval' lets WebAssembly compile (the 3D view's splat sorter, in a blob worker
    // that inherits this policy); it allows no JavaScript eval.
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic' 'wasm-unsafe-eval'${isDev ? " 'unsafe-eval'" : ""}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "media-src 'self' blob:",
    "worker-src 'self' blob:",
    ["connect-src 'self'", ...connectTo].join(" "),
    ["frame-src 'self'", ...frames].join(" "),
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    ...(isHttps ? ["upgrade-insecure-requests"] : []),
  ];
  return directives.join("; ");
}

/**
 * What Firebase sign-in needs from the browser, when it is on: its REST services (or the
 * emulator) for calls, and the project's auth domain for the popup's helper frame.
 */
export function firebaseOrigins(settings: { projectId?: string; authDomain?: string; emulatorHost?: string }): { connectTo: string[]; frames: string[] } {
  if (!settings.projectId) return { connectTo: [], frames: [] };
  const emulator = settings.emulatorHost ? [`http://${settings.emulatorHost}`] : [];
  return {
    connectTo: ["https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com", "https://www.googleapis.com", "https://apis.google.com", ...emulator],
    frames: [`https://${settings.authDomain ?? `${settings.projectId}.firebaseapp.com`}`, "https://apis.google.com", ...emulator],
  };
}
