import { AppError } from "../errors";
import { INT_COLUMN_MAX } from "../db/limits";
import { quoteShell } from "../ssh/shell-quote";
import { PLACEHOLDERS } from "./training.schemas";

// A target's command template becomes one shell line on the host. Every value put in a
// placeholder, and every extra argument, is quoted: a dataset name or argument can never run
// anything of its own.

export type TemplateValues = Record<(typeof PLACEHOLDERS)[number], string>;

/**
 * Splits a line of arguments as a POSIX shell would for words: whitespace separates, single
 * quotes keep everything, double quotes keep all but \" and \\, a backslash escapes one
 * character. Nothing is expanded. Unbalanced quotes are refused.
 */
export function splitArgs(line: string): string[] {
  const args: string[] = [];
  let current: string | null = null;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else current += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && (line[i + 1] === '"' || line[i + 1] === "\\")) current += line[++i];
      else current += c;
    } else if (/\s/.test(c)) {
      if (current !== null) args.push(current);
      current = null;
    } else if (c === "'" || c === '"') {
      quote = c;
      current ??= "";
    } else if (c === "\\" && i + 1 < line.length) {
      current = (current ?? "") + line[++i];
    } else {
      current = (current ?? "") + c;
    }
  }
  if (quote) throw new AppError("BAD_REQUEST", `The extra arguments have an unclosed ${quote === "'" ? "single" : "double"} quote`);
  if (current !== null) args.push(current);
  return args;
}

/**
 * The template with each {placeholder} replaced by its quoted value, then the extra arguments,
 * each quoted. The template's own text is the admin's (it is the command); only values are
 * quoted.
 */
export function renderCommand(template: string, values: TemplateValues | Record<string, string>, extraArgs = ""): string {
  const line = template.replace(/\{([a-z_]+)\}/g, (whole, name: string) => {
    if (!(name in values)) throw new AppError("BAD_REQUEST", `The command template names {${name}}, which is not a placeholder`);
    return quoteShell((values as Record<string, string>)[name]);
  });
  const extra = splitArgs(extraArgs).map(quoteShell).join(" ");
  return extra ? `${line} ${extra}` : line;
}

/**
 * Whether a step a host reported (in its log, or as a checkpoint's name) can be stored: a whole
 * number its Int columns hold. Others are ignored, as a line that is not a metrics line is.
 */
export function isStoredStep(step: number): boolean {
  return Number.isSafeInteger(step) && step >= 0 && step <= INT_COLUMN_MAX;
}

/** "2K" → 2000, "1.5M" → 1500000, "16" → 16 (LeRobot's format_big_number). */
export function parseBigNumber(text: string): number | null {
  const m = /^(-?\d+(?:\.\d+)?)([KMBTQ]?)$/.exec(text);
  if (!m) return null;
  const scale = { "": 1, K: 1e3, M: 1e6, B: 1e9, T: 1e12, Q: 1e15 }[m[2] as "" | "K" | "M" | "B" | "T" | "Q"];
  return Number(m[1]) * scale;
}

/**
 * LeRobot's periodic training line, read as generic `key:value` tokens:
 * `INFO 2025-03-25 14:08:06 ts/train.py:232 step:2K smpl:16K ep:40 epch:0.53 loss:0.412 grdn:1.2 lr:1.0e-05 updt_s:0.123 data_s:0.004`
 * Newer versions add tokens (smp/s, mem_gb, l1_loss…): every numeric token is kept. A line
 * without `step:` and `loss:`-like numbers is not a metrics line.
 */
export function parseMetricsLine(line: string): { stepText: string; values: Record<string, number> } | null {
  const tokens = [...line.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_/]*):(\S+)/g)];
  const step = tokens.find((t) => t[1] === "step");
  if (!step) return null;
  const values: Record<string, number> = {};
  for (const [, key, raw] of tokens) {
    // A source location (train.py:232) is not a metric.
    if (key.includes(".") || key.endsWith(".py")) continue;
    const n = key === "step" || key === "smpl" || key === "ep" ? parseBigNumber(raw) : Number(raw);
    if (n !== null && Number.isFinite(n)) values[key] = n;
  }
  if (Object.keys(values).length < 2) return null;
  return { stepText: step[2], values };
}
