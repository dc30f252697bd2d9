import path from "node:path";
import { AppError } from "../errors";

/** Joins `parts` under `root` and proves the result stays inside it. */
export function resolveInside(root: string, ...parts: string[]): string {
  const base = path.resolve(root);
  const full = path.resolve(base, ...parts);
  if (full !== base && !full.startsWith(base + path.sep)) throw new AppError("BAD_REQUEST", `${parts.join("/")} is outside ${path.basename(base)}`);
  return full;
}
