import { decode } from "next-auth/jwt";
import { env } from "../env";

/** next-auth's session cookie, as it names it (secure cookies when served over https). */
export function sessionCookieName(): string {
  return env().PUBLIC_URL.startsWith("https://") ? "__Secure-next-auth.session-token" : "next-auth.session-token";
}

function readCookie(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  const parts = header.split(/;\s*/);
  const whole = parts.find((p) => p.startsWith(`${name}=`));
  if (whole) return decodeURIComponent(whole.slice(name.length + 1));
  // Large sessions are split into name.0, name.1, ...
  const chunks = parts
    .filter((p) => p.startsWith(`${name}.`))
    .map((p) => {
      const eq = p.indexOf("=");
      return { i: Number(p.slice(name.length + 1, eq)), v: decodeURIComponent(p.slice(eq + 1)) };
    })
    .sort((a, b) => a.i - b.i);
  return chunks.length ? chunks.map((c) => c.v).join("") : undefined;
}

/** The signed-in user's id from the session cookie, or null. */
export async function readSessionUserId(headers: Headers): Promise<string | null> {
  const token = readCookie(headers.get("cookie"), sessionCookieName());
  if (!token) return null;
  try {
    const payload = await decode({ token, secret: env().AUTH_SECRET });
    return typeof payload?.sub === "string" ? payload.sub : null;
  } catch {
    return null;
  }
}
