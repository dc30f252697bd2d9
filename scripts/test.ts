import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

// `npm test`: the type check, unit and integration tests (vitest, real Postgres), and the
// browser tests (Playwright in Chromium), then one closing line for all of them together.

const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : null;
const out = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-test-"));
const bin = (name: string) => path.resolve("node_modules/.bin", name);

interface Tally { passed: number; failed: number; skipped: number }
const tallies: Record<string, Tally> = {};

function run(cmd: string, args: string[], env: Record<string, string> = {}): number {
  console.log(`\n▶ ${path.basename(cmd)} ${args.join(" ")}`);
  const result = spawnSync(cmd, args, { stdio: "inherit", env: { ...process.env, ...env } });
  return result.status ?? 1;
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch {
    return null;
  }
}

if (!only || only === "types") {
  const code = run(bin("tsc"), ["--noEmit", "-p", "."]);
  tallies.types = { passed: code === 0 ? 1 : 0, failed: code === 0 ? 0 : 1, skipped: 0 };
}

if (!only || only === "unit") {
  const file = path.join(out, "vitest.json");
  const code = run(bin("vitest"), ["run"], { VITEST_JSON: file });
  const report = readJson<{ numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number }>(file);
  tallies.unit = report
    ? { passed: report.numPassedTests, failed: report.numFailedTests + (code !== 0 && report.numFailedTests === 0 ? 1 : 0), skipped: report.numPendingTests + report.numTodoTests }
    : { passed: 0, failed: 1, skipped: 0 };
}

if (!only || only === "e2e") {
  const file = path.join(out, "playwright.json");
  const code = run(bin("playwright"), ["test"], { PLAYWRIGHT_JSON: file });
  const report = readJson<{ stats: { expected: number; unexpected: number; flaky: number; skipped: number } }>(file);
  tallies.e2e = report
    ? { passed: report.stats.expected + report.stats.flaky, failed: report.stats.unexpected + (code !== 0 && report.stats.unexpected === 0 ? 1 : 0), skipped: report.stats.skipped }
    : { passed: 0, failed: 1, skipped: 0 };
}

const total = Object.values(tallies).reduce((a, t) => ({ passed: a.passed + t.passed, failed: a.failed + t.failed, skipped: a.skipped + t.skipped }), { passed: 0, failed: 0, skipped: 0 });
console.log("\nSuites: " + Object.entries(tallies).map(([k, t]) => `${k} ${t.passed} passed, ${t.failed} failed`).join(" · "));
console.log(`${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ""}`);
fs.rmSync(out, { recursive: true, force: true });
process.exit(total.failed > 0 || total.passed === 0 ? 1 : 0);
