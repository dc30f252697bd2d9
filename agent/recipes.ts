import { spawn } from "node:child_process";
import type { z } from "zod";
import type { commandResultSchemas } from "../server/hardware/hardware.schemas";
import { RECIPE_LOG_LINE_MAX, type Recipe, type RecipeStep } from "../server/hardware/recipes";

// Runs a set-up recipe's steps on this computer, one `bash -c` each in a process group of its
// own, so a cancel or a step's timeout ends everything the step started (pip and its children
// included). Output goes to the portal as log lines: decoded leniently, control characters
// dropped, long lines cut, and a step that prints without end is cut off after a cap rather
// than flooding the portal.

type RecipeResult = z.infer<(typeof commandResultSchemas)["recipe.run"]>;
type StepResult = RecipeResult["steps"][number];

export interface RecipeContext {
  progress(progress: number | null, step: string | null): void;
  /** Lines of a step's output, in batches. */
  log(step: string, lines: string[]): void;
  signal: AbortSignal;
  /** How this agent may act as root: already root, through passwordless sudo, or not at all. */
  privilege?: () => Promise<"root" | "sudo" | null>;
  /** Killed steps get this long after SIGTERM before SIGKILL. */
  killGraceMs?: number;
}

/** What a step may forward to the portal; the rest is counted, not sent. */
const STEP_LOG_MAX_BYTES = 1024 * 1024;
const FLUSH_MS = 200;
const FLUSH_LINES = 100;

export async function detectPrivilege(): Promise<"root" | "sudo" | null> {
  if (process.getuid?.() === 0) return "root";
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn("sudo", ["-n", "true"], { stdio: "ignore" });
    child.on("error", () => resolve(null));
    child.on("exit", (c) => resolve(c));
  });
  return code === 0 ? "sudo" : null;
}

/** One line as it is shown: printable text only, at most RECIPE_LOG_LINE_MAX characters. */
export function cleanLine(line: string): string {
  // eslint-disable-next-line no-control-regex
  const printable = line.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
  return printable.length > RECIPE_LOG_LINE_MAX ? `${printable.slice(0, RECIPE_LOG_LINE_MAX - 1)}…` : printable;
}

export async function runRecipe(recipe: Recipe, params: Record<string, unknown>, { fromStep }: { fromStep?: string }, ctx: RecipeContext): Promise<RecipeResult> {
  const steps = recipe.steps as RecipeStep[];
  const start = fromStep ? steps.findIndex((s) => s.id === fromStep) : 0;
  if (start < 0) throw new Error(`${recipe.title} has no step "${fromStep}" (its steps: ${steps.map((s) => s.id).join(", ")})`);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) env[`GANTRY_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`] = String(value);
  const results: StepResult[] = steps.map((s, i) => ({ id: s.id, title: s.title, status: i < start ? "skipped" : "not-run", exitCode: null, note: i < start ? "done in an earlier run" : null, durationMs: null }));
  let privilege: "root" | "sudo" | null | undefined;
  for (let i = start; i < steps.length; i++) {
    const step = steps[i]!;
    const result = results[i]!;
    ctx.progress((i - start) / (steps.length - start), `${step.title} (${i + 1} of ${steps.length})`);
    let sudo = "";
    if (step.needsRoot) {
      privilege ??= await (ctx.privilege ?? detectPrivilege)();
      if (!privilege) {
        result.status = "skipped";
        result.note = `Needs root, which this agent has not (it runs as an ordinary user without passwordless sudo): do it yourself — ${step.needsRoot.manual}`;
        ctx.log(step.id, [result.note]);
        continue;
      }
      if (privilege === "sudo") sudo = "sudo -n";
    }
    const began = Date.now();
    const { exitCode, note } = await runStep(step, { ...env, GANTRY_SUDO: sudo }, ctx);
    result.durationMs = Date.now() - began;
    result.exitCode = exitCode;
    result.note = note;
    if (ctx.signal.aborted) throw new Error(`${recipe.title} was stopped during "${step.title}"`);
    if (exitCode !== 0) {
      result.status = "failed";
      ctx.progress(1, `${step.title} failed`);
      return { recipe: recipe.id, version: recipe.version, outcome: "failed", steps: results };
    }
    result.status = "succeeded";
  }
  ctx.progress(1, "done");
  return { recipe: recipe.id, version: recipe.version, outcome: "succeeded", steps: results };
}

function runStep(step: RecipeStep, env: Record<string, string>, ctx: RecipeContext): Promise<{ exitCode: number | null; note: string | null }> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", step.script], { detached: true, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let pending: string[] = [];
    let sentBytes = 0;
    let droppedLines = 0;
    let note: string | null = null;
    const flush = () => {
      if (!pending.length) return;
      ctx.log(step.id, pending);
      pending = [];
    };
    const flusher = setInterval(flush, FLUSH_MS);
    const push = (line: string) => {
      const clean = cleanLine(line);
      if (!clean.trim()) return;
      if (sentBytes + clean.length > STEP_LOG_MAX_BYTES) {
        droppedLines++;
        return;
      }
      sentBytes += clean.length + 1;
      pending.push(clean);
      if (pending.length >= FLUSH_LINES) flush();
    };
    // Each stream splits on its own, so a line is never half stdout and half stderr; a
    // carriage return (a progress bar redrawing) ends a line too.
    const reader = () => {
      const decoder = new TextDecoder("utf-8", { fatal: false });
      let partial = "";
      return {
        data: (chunk: Buffer) => {
          partial += decoder.decode(chunk, { stream: true });
          const parts = partial.split(/\r\n|\r|\n/);
          partial = parts.pop() ?? "";
          // A "line" that never ends is cut into pieces rather than held for ever.
          while (partial.length > RECIPE_LOG_LINE_MAX) {
            push(partial.slice(0, RECIPE_LOG_LINE_MAX));
            partial = partial.slice(RECIPE_LOG_LINE_MAX);
          }
          for (const p of parts) push(p);
        },
        end: () => {
          partial += decoder.decode();
          if (partial) push(partial);
          partial = "";
        },
      };
    };
    const out = reader();
    const err = reader();
    child.stdout!.on("data", out.data);
    child.stderr!.on("data", err.data);
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const killGroup = (why: string) => {
      if (note) return;
      note = why;
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // already gone
      }
      killTimer = setTimeout(() => {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // already gone
        }
      }, ctx.killGraceMs ?? 3000);
    };
    const timeout = setTimeout(() => killGroup(`did not finish within ${Math.round(step.timeoutMs / 1000)} s and was ended`), step.timeoutMs);
    const onAbort = () => killGroup("stopped");
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    if (ctx.signal.aborted) onAbort();
    let settled = false;
    const finish = (exitCode: number | null, spawnError?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timeout);
      clearTimeout(killTimer);
      clearInterval(flusher);
      ctx.signal.removeEventListener("abort", onAbort);
      out.end();
      err.end();
      if (droppedLines) pending.push(`(${droppedLines} more line(s) of output not shown: the step printed more than ${STEP_LOG_MAX_BYTES / 1024} KB)`);
      if (spawnError) pending.push(`Could not start bash: ${spawnError.message}`);
      if (note) pending.push(`"${step.title}" ${note}`);
      else if (exitCode !== 0) pending.push(`"${step.title}" failed (exit code ${exitCode})`);
      flush();
      resolve({ exitCode: note ? null : exitCode, note: note ? `${step.title} ${note}` : spawnError ? spawnError.message : exitCode !== 0 ? `exit code ${exitCode}` : null });
    };
    child.on("error", (error) => finish(null, error));
    // "close", not "exit": every line the step printed has been read by then.
    child.on("close", (code, signal) => finish(code ?? (signal ? 128 : null)));
  });
}
