import type { Tx } from "../db";
import type { Env } from "../env";
import { AppError } from "../errors";
import { checkRole, type OrgActor } from "../auth/roles";
import { mintInternalToken } from "./internal-token";

// The endpoint page's "try it" form: the portal calls the real model server over HTTP, as a
// client would, with a short-lived token it signs for the signed-in person (internal-token.ts).
// The answer comes back as the model server gave it, status and body, with the time it took.

/** Longer than any inference the model server lets run, so its own 504 comes back first. */
const CALL_TIMEOUT_MS = 10 * 60_000;

/** Where the portal reaches the model server: loopback when it listens on every address. */
export function serveInternalUrl(env: Pick<Env, "SERVE_HOST" | "SERVE_PORT">): string {
  const host = env.SERVE_HOST.replace(/^\[(.*)\]$/, "$1");
  if (host === "0.0.0.0" || host === "::") return `http://127.0.0.1:${env.SERVE_PORT}`;
  return `http://${host.includes(":") ? `[${host}]` : host}:${env.SERVE_PORT}`;
}

export async function tryEndpoint(
  db: Tx,
  { actor, endpointId, inputs, secret, serveUrl }: { actor: OrgActor; endpointId: string; inputs: Record<string, unknown>; secret: string; serveUrl: string },
): Promise<{ status: number; ms: number; body: unknown }> {
  checkRole(actor, "viewer");
  const endpoint = await db.endpoint.findFirst({ where: { id: endpointId, orgId: actor.orgId }, select: { name: true } });
  if (!endpoint) throw new AppError("NOT_FOUND", "There is no such endpoint in this organisation; it may have been deleted");
  const token = mintInternalToken(secret, { orgId: actor.orgId, userId: actor.userId });
  const url = `${serveUrl.replace(/\/+$/, "")}/predict/${encodeURIComponent(endpoint.name)}`;
  const started = performance.now();
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ inputs }),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      redirect: "error",
    });
  } catch (error) {
    const reason = error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error);
    throw new AppError("INTERNAL", `The model server at ${serveUrl} did not answer (${reason}); check that it is running (it starts beside the web app) and that SERVE_HOST and SERVE_PORT point at it`);
  }
  const text = await res.text();
  const ms = Math.round((performance.now() - started) * 100) / 100;
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's error page, say): shown as text.
  }
  return { status: res.status, ms, body };
}
