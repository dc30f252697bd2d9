import { AppError } from "../errors";

/**
 * Postgres keeps no NUL character (U+0000) in text or JSON: an input holding one is refused
 * (400, naming where), before anything is stored, instead of failing as it is written.
 */
export function refuseNulCharacters(value: unknown, what: string): void {
  const where = nulCharacterAt(value, "");
  if (where !== null) throw new AppError("BAD_REQUEST", `${what} holds a NUL character (\\u0000)${where ? ` in ${where}` : ""}; the portal keeps text without them, so remove it and send again`);
}

/** The path of the first string (or key) holding U+0000, "" for the value itself, or null. */
function nulCharacterAt(value: unknown, path: string): string | null {
  if (typeof value === "string") return value.includes("\u0000") ? path : null;
  if (value === null || typeof value !== "object") return null;
  for (const [key, item] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key;
    if (key.includes("\u0000")) return at;
    const found = nulCharacterAt(item, at);
    if (found !== null) return found;
  }
  return null;
}
