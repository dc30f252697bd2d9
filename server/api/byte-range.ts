import { AppError } from "../errors";

/**
 * One `bytes=a-b` range (the only kind browsers and resuming downloaders send), or null for the
 * whole file; `{ start: -1 }` when the range lies past the end (answer 416).
 */
export function parseRangeHeader(header: string | null, size: number): { start: number; end: number } | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) throw new AppError("BAD_REQUEST", "Only a single bytes=start-end range is supported");
  let start: number;
  let end: number;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return { start: -1, end: -1 };
  return { start, end };
}
