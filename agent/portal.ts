import type { AgentConfig } from "./config";
import { noAnswer, PortalError, withRetries, type RetryOptions } from "./retry";

// Calls to the portal's JSON endpoints, with errors a person can act on. A call given `retry` is
// tried again when the portal does not answer or answers 5xx (retry.ts); a 4xx ends it at once
// with the portal's message.

const TIMEOUT_MS = 60_000;

export function portalUrl(config: Pick<AgentConfig, "portal">, pathname: string): string {
  return new URL(pathname, config.portal.endsWith("/") ? config.portal : `${config.portal}/`).toString();
}

/** The message of a portal's error answer: `{error: {message}}`, or its text. */
export function portalMessage(text: string, fallback: string): string {
  try {
    const message = (JSON.parse(text) as { error?: { message?: unknown } } | null)?.error?.message;
    if (typeof message === "string" && message) return message;
  } catch {
    /* not JSON: its text */
  }
  return text.trim().slice(0, 300) || fallback;
}

export async function portalFetch<T>(config: Pick<AgentConfig, "portal" | "token">, pathname: string, init: { method?: string; body?: unknown; retry?: RetryOptions } = {}): Promise<T> {
  const once = () => fetchOnce<T>(config, pathname, init);
  return init.retry ? withRetries(once, init.retry) : once();
}

async function fetchOnce<T>(config: Pick<AgentConfig, "portal" | "token">, pathname: string, init: { method?: string; body?: unknown }): Promise<T> {
  const url = portalUrl(config, pathname);
  const method = init.method ?? "GET";
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${config.token}`, ...(init.body === undefined ? {} : { "content-type": "application/json" }) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    text = await response.text();
  } catch (error) {
    const { code, reason } = noAnswer(error, TIMEOUT_MS);
    throw new PortalError(`Cannot reach the portal at ${config.portal}: ${code}`, 0, reason);
  }
  if (!response.ok) {
    const message = portalMessage(text, response.statusText);
    const hint = response.status === 401 ? " (run `gantry-agent login` with a valid token)" : "";
    throw new PortalError(`The portal refused ${method} ${new URL(url).pathname} (HTTP ${response.status}): ${message}${hint}`, response.status, `the portal answered HTTP ${response.status} (${message})`);
  }
  try {
    return (text ? JSON.parse(text) : null) as T;
  } catch {
    throw new PortalError(`The portal's answer to ${method} ${new URL(url).pathname} is not JSON: ${text.trim().slice(0, 200)}`, response.status, "the portal's answer is not JSON");
  }
}
