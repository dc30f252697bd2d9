import { env } from "../env";
import { AppError } from "../errors";
import { formatBytes } from "../storage/blob-store";
import { refuseNulCharacters } from "../security/nul-characters";
import { isCookieSession, mediaType } from "./cross-site";

// Request bodies of the JSON transports (tRPC and the JSON route handlers): refused by their
// declared length before a byte is read, cut off while reading past the limit, and refused
// when nested deeper than any input of the portal's, before JSON.parse builds the structure.

/** Deeper than any real input (a test vector of 8-D tensors inside tRPC's batch wrapper is < 20). */
export const MAX_JSON_DEPTH = 64;

export function bodyTooLarge(maxBytes: number, setting = "API_MAX_BODY_BYTES"): AppError {
  return new AppError("PAYLOAD_TOO_LARGE", `The request body is larger than the ${formatBytes(maxBytes)} ${setting} allows; send less at once`);
}

/** The declared Content-Length, when there is a valid one. */
export function declaredLength(headers: Headers): number | null {
  const value = headers.get("content-length");
  return value !== null && /^\d+$/.test(value.trim()) ? Number(value) : null;
}

/** The whole body as text, refused (413) by its declared length up front or as soon as more than `maxBytes` arrive. */
export async function readBodyText(request: Request, maxBytes: number, setting?: string): Promise<string> {
  if ((declaredLength(request.headers) ?? 0) > maxBytes) throw bodyTooLarge(maxBytes, setting);
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw bodyTooLarge(maxBytes, setting);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size).toString("utf8");
}

/** Whether JSON text nests arrays and objects more than `limit` deep; a linear scan that skips strings. */
export function isNestedDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let isInString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isInString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) isInString = false;
    } else if (c === 0x22) isInString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** JSON text parsed, or a 400 saying why not; `what` names it in the message. */
export function parseJsonText(text: string, what = "The request body"): unknown {
  if (isNestedDeeperThan(text, MAX_JSON_DEPTH)) throw new AppError("BAD_REQUEST", `${what} nests arrays or objects more than ${MAX_JSON_DEPTH} deep; no input of the portal needs that many levels`);
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError("BAD_REQUEST", `${what} is not valid JSON`);
  }
}

/**
 * A JSON request body, at most API_MAX_BODY_BYTES. A browser signed in by its cookie must say
 * it is sending JSON; API-token clients written for the earlier systems need not. With
 * `whenEmpty`, a body of nothing (or only blanks) stands for that value.
 */
export async function readJsonBody(request: Request, { maxBytes = env().API_MAX_BODY_BYTES, whenEmpty }: { maxBytes?: number; whenEmpty?: unknown } = {}): Promise<unknown> {
  const isNotJson = isCookieSession(request.headers) && mediaType(request.headers) !== "application/json";
  const refuse = () => new AppError("UNSUPPORTED_MEDIA_TYPE", "Send the body as JSON with Content-Type: application/json");
  if (isNotJson && whenEmpty === undefined) throw refuse();
  const text = await readBodyText(request, maxBytes);
  if (whenEmpty !== undefined && text.trim() === "") return whenEmpty;
  if (isNotJson) throw refuse();
  const value = parseJsonText(text);
  refuseNulCharacters(value, "The request body");
  return value;
}
