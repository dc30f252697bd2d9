import { AgentError, type AgentConfig } from "./config";

// Calls to the portal's JSON endpoints, with errors a person can act on.

export function portalUrl(config: Pick<AgentConfig, "portal">, pathname: string): string {
  return new URL(pathname, config.portal.endsWith("/") ? config.portal : `${config.portal}/`).toString();
}

export async function portalFetch<T>(config: Pick<AgentConfig, "portal" | "token">, pathname: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const url = portalUrl(config, pathname);
  let response: Response;
  try {
    response = await fetch(url, {
      method: init.method ?? "GET",
      headers: { authorization: `Bearer ${config.token}`, ...(init.body === undefined ? {} : { "content-type": "application/json" }) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new AgentError(`Cannot reach the portal at ${config.portal}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: reported below */
  }
  if (!response.ok) {
    const message = (json as { error?: { message?: string } } | null)?.error?.message ?? (text.trim().slice(0, 300) || response.statusText);
    const hint = response.status === 401 ? " (run `gantry-agent login` with a valid token)" : "";
    throw new AgentError(`The portal refused ${init.method ?? "GET"} ${new URL(url).pathname} (HTTP ${response.status}): ${message}${hint}`);
  }
  return json as T;
}
