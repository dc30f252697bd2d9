import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { RECIPES, type Recipe } from "../server/hardware/recipes";
import { cleanLine, runRecipe } from "./recipes";

// The recipe runner with recipes made for the test (the shipped ones install software): real
// bash, real process groups.

function collect() {
  const lines: { step: string; line: string }[] = [];
  const steps: (string | null)[] = [];
  return {
    lines,
    steps,
    ctx: (signal = new AbortSignal() as AbortSignal, privilege: "root" | "sudo" | null = null) => ({
      progress: (_: number | null, step: string | null) => steps.push(step),
      log: (step: string, ls: string[]) => lines.push(...ls.map((line) => ({ step, line }))),
      signal,
      privilege: async () => privilege,
      killGraceMs: 300,
    }),
  };
}

const never = new AbortController().signal;
const recipe = (steps: Recipe["steps"], params: z.ZodType = z.object({}).strict()): Recipe => ({ id: "test", version: 1, title: "Test recipe", description: "", params, steps });
const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, "utf8"));

describe("recipes", () => {
  it("runs steps in order with parameters in the environment, and logs each step's lines", async () => {
    const c = collect();
    const r = recipe([
      { id: "one", title: "First", script: 'echo "path is $GANTRY_PATH"; echo to-stderr >&2', timeoutMs: 5000 },
      { id: "two", title: "Second", script: "printf 'a\\rb\\r\\nc'", timeoutMs: 5000 },
    ]);
    const result = await runRecipe(r, { path: "~/x y" }, {}, c.ctx(never));
    expect(result.outcome).toBe("succeeded");
    expect(result.steps.map((s) => s.status)).toEqual(["succeeded", "succeeded"]);
    expect(c.lines.filter((l) => l.step === "one").map((l) => l.line).sort()).toEqual(["path is ~/x y", "to-stderr"]);
    // A carriage return (a progress bar) ends a line.
    expect(c.lines.filter((l) => l.step === "two").map((l) => l.line)).toEqual(["a", "b", "c"]);
    expect(c.steps.at(-1)).toBe("done");
  });

  it("stops at a failing step and can go on from it", async () => {
    const c = collect();
    const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "gantry-recipe-")), "ok");
    const r = recipe([
      { id: "a", title: "A", script: "echo a", timeoutMs: 5000 },
      { id: "b", title: "B", script: `test -f "${marker}" || { echo "no marker" >&2; exit 3; }`, timeoutMs: 5000 },
      { id: "c", title: "C", script: "echo c", timeoutMs: 5000 },
    ]);
    const first = await runRecipe(r, {}, {}, c.ctx(never));
    expect(first.outcome).toBe("failed");
    expect(first.steps.map((s) => [s.status, s.exitCode])).toEqual([["succeeded", 0], ["failed", 3], ["not-run", null]]);
    expect(c.lines.map((l) => l.line)).toContain('"B" failed (exit code 3)');
    fs.writeFileSync(marker, "");
    const again = await runRecipe(r, {}, { fromStep: "b" }, c.ctx(never));
    expect(again.steps.map((s) => s.status)).toEqual(["skipped", "succeeded", "succeeded"]);
    await expect(runRecipe(r, {}, { fromStep: "zzz" }, c.ctx(never))).rejects.toThrow(/has no step "zzz"/);
  });

  it("ends a step that never ends, with everything it started", async () => {
    const c = collect();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-recipe-"));
    const r = recipe([{ id: "hang", title: "Hang", script: `sleep 300 & echo $! > "${dir}/child"; sleep 300`, timeoutMs: 800 }]);
    const result = await runRecipe(r, {}, {}, c.ctx(never));
    expect(result.outcome).toBe("failed");
    expect(result.steps[0]!.note).toMatch(/did not finish within 1 s and was ended/);
    const child = Number(fs.readFileSync(path.join(dir, "child"), "utf8"));
    await expect.poll(() => alive(child), { timeout: 5000 }).toBe(false);
  });

  it("is stopped by a cancel, process group and all", async () => {
    const c = collect();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-recipe-"));
    const controller = new AbortController();
    const r = recipe([{ id: "long", title: "Long", script: `sleep 300 & echo $! > "${dir}/child"; echo started; wait`, timeoutMs: 60_000 }]);
    const running = runRecipe(r, {}, {}, c.ctx(controller.signal));
    await expect.poll(() => fs.existsSync(path.join(dir, "child")) && fs.readFileSync(path.join(dir, "child"), "utf8").trim() !== "", { timeout: 5000 }).toBe(true);
    controller.abort();
    await expect(running).rejects.toThrow(/was stopped during "Long"/);
    await expect.poll(() => alive(Number(fs.readFileSync(path.join(dir, "child"), "utf8"))), { timeout: 5000 }).toBe(false);
  });

  it("keeps binary garbage and endless output readable and bounded", async () => {
    const c = collect();
    const r = recipe([
      { id: "garbage", title: "Garbage", script: "head -c 20000 /dev/urandom; printf '\\n\\x1b[31mred\\x1b[0m\\n'", timeoutMs: 5000 },
      { id: "flood", title: "Flood", script: "yes 'a line of output' | head -n 200000", timeoutMs: 20_000 },
    ]);
    const result = await runRecipe(r, {}, {}, c.ctx(never));
    expect(result.outcome).toBe("succeeded");
    for (const { line } of c.lines) {
      expect(line.length).toBeLessThanOrEqual(2000);
      // eslint-disable-next-line no-control-regex
      expect(line).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    }
    expect(c.lines.some((l) => l.step === "garbage" && l.line === "red")).toBe(true);
    const flood = c.lines.filter((l) => l.step === "flood");
    expect(flood.length).toBeLessThan(200_000);
    expect(flood.at(-1)!.line).toMatch(/more line\(s\) of output not shown/);
    expect(cleanLine("x".repeat(5000))).toHaveLength(2000);
  });

  it("skips a step that needs root when the agent has none, saying what to do", async () => {
    const c = collect();
    const result = await runRecipe(RECIPES.dialout as Recipe, {}, {}, c.ctx(never, null));
    expect(result.outcome).toBe("succeeded");
    expect(result.steps[0]).toMatchObject({ status: "skipped", exitCode: null });
    expect(result.steps[0]!.note).toMatch(/Needs root.*sudo usermod -aG dialout \$USER/);
  });

  it("installs LeRobot into a virtual environment, says what is missing when it cannot, and goes on from the failed step", async () => {
    const c = collect();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-recipe-"));
    const wheels = path.join(dir, "wheels");
    fs.mkdirSync(wheels);
    const r = RECIPES["install-lerobot"] as Recipe;
    const params = r.params.parse({ path: path.join(dir, "lerobot") }) as Record<string, unknown>;
    // No package index here: pip looks only in a folder (as a lab's mirror would serve it).
    process.env.PIP_NO_INDEX = "1";
    process.env.PIP_FIND_LINKS = wheels;
    try {
      const first = await runRecipe(r, params, {}, c.ctx(never));
      expect(first.steps.map((s) => s.status)).toEqual(["succeeded", "succeeded", "failed", "not-run"]);
      expect(fs.existsSync(path.join(dir, "lerobot/.venv/bin/python"))).toBe(true);
      expect(c.lines.filter((l) => l.step === "install").map((l) => l.line).join("\n")).toMatch(/No matching distribution found for lerobot/);
      // A stand-in lerobot wheel (its name, its feetech extra, its lerobot-find-port script) in the folder; go on from the failed step.
      standInLerobotWheel(wheels);
      const again = await runRecipe(r, params, { fromStep: "install" }, c.ctx(never));
      expect(again.steps.map((s) => s.status)).toEqual(["skipped", "skipped", "succeeded", "succeeded"]);
      expect(c.lines.filter((l) => l.step === "verify").map((l) => l.line)).toEqual(["lerobot 0.4.2", `LeRobot is ready: source ${path.join(dir, "lerobot")}/.venv/bin/activate`]);
    } finally {
      delete process.env.PIP_NO_INDEX;
      delete process.env.PIP_FIND_LINKS;
    }
  }, 120_000);
});

/** A minimal wheel named lerobot with a feetech extra and a lerobot-find-port console script. */
function standInLerobotWheel(dir: string): void {
  const script = `
import base64, hashlib, sys, zipfile
files = {
  "lerobot/__init__.py": "__version__ = '0.4.2'\\n",
  "lerobot/find_port.py": "def main():\\n    print('stand-in find-port')\\n",
  "lerobot-0.4.2.dist-info/METADATA": "Metadata-Version: 2.1\\nName: lerobot\\nVersion: 0.4.2\\nProvides-Extra: feetech\\nProvides-Extra: dynamixel\\n",
  "lerobot-0.4.2.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
  "lerobot-0.4.2.dist-info/entry_points.txt": "[console_scripts]\\nlerobot-find-port = lerobot.find_port:main\\n",
}
record = []
with zipfile.ZipFile(sys.argv[1], "w") as z:
  for name, text in files.items():
    data = text.encode()
    z.writestr(name, data)
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{name},sha256={digest},{len(data)}")
  record.append("lerobot-0.4.2.dist-info/RECORD,,")
  z.writestr("lerobot-0.4.2.dist-info/RECORD", "\\n".join(record) + "\\n")
`;
  const result = spawnSync("python3", ["-c", script, path.join(dir, "lerobot-0.4.2-py3-none-any.whl")], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`could not build the stand-in wheel: ${result.stderr}`);
}
