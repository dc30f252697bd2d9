import { describe, expect, it } from "vitest";
import { waitFor } from "../tests/helpers/factories";
import { startChild, Supervisor, type Unit } from "./supervisor";

// Real child processes that crash, are killed, or will not stop.

const node = (script: string) => ({ command: process.execPath, args: ["-e", script] });
const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const pidOf = (unit: Unit | null) => Number(/pid (\d+)/.exec(unit?.description ?? "")?.[1]);

function supervise(script: string, opts: { initialDelayMs?: number; maxDelayMs?: number; stableAfterMs?: number; stopTimeoutMs?: number } = {}) {
  const lines: string[] = [];
  const output: string[] = [];
  let starts = 0;
  const supervisor = new Supervisor({
    name: "child",
    log: (m) => lines.push(m),
    initialDelayMs: opts.initialDelayMs ?? 100,
    maxDelayMs: opts.maxDelayMs ?? 400,
    stableAfterMs: opts.stableAfterMs,
    start: () => {
      starts++;
      return startChild({ name: "child", ...node(script), output: (line) => output.push(line), stopTimeoutMs: opts.stopTimeoutMs });
    },
  });
  return { supervisor, lines, output, starts: () => starts };
}

describe("the supervisor", () => {
  it("starts a crashed child again, pausing longer each time it crashes in a row, and says so", async () => {
    const { supervisor, lines, output, starts } = supervise("console.log('up'); setTimeout(() => process.exit(3), 50)");
    await supervisor.start();
    await waitFor(async () => starts() >= 4, { timeoutMs: 10_000, what: "three restarts" });
    await supervisor.stop();
    const restarting = lines.filter((l) => l.includes("stopped unexpectedly"));
    expect(restarting[0]).toBe("child stopped unexpectedly (exit code 3); restarting it in 100 ms");
    expect(restarting[1]).toBe("child stopped unexpectedly (exit code 3); restarting it in 200 ms (failure 2 in a row)");
    expect(restarting[2]).toMatch(/restarting it in 400 ms \(failure 3 in a row\)$/);
    expect(lines.filter((l) => /^child restarted \(pid \d+\)$/.test(l)).length).toBe(supervisor.restarts);
    expect(output.filter((l) => l === "[child] up").length).toBeGreaterThanOrEqual(3);
    // Stopped: nothing is started again.
    const stoppedAt = starts();
    await new Promise((r) => setTimeout(r, 600));
    expect(starts()).toBe(stoppedAt);
  });

  it("brings back a child killed with SIGKILL, as a new process", async () => {
    const { supervisor, lines } = supervise("setInterval(() => {}, 1000)");
    const first = pidOf(await supervisor.start());
    process.kill(first, "SIGKILL");
    const second = await waitFor(async () => supervisor.unit && pidOf(supervisor.unit) !== first && pidOf(supervisor.unit), { timeoutMs: 5_000, what: "the child to come back" });
    expect(second).not.toBe(first);
    expect(isAlive(second)).toBe(true);
    expect(lines).toContain("child stopped unexpectedly (killed by SIGKILL); restarting it in 100 ms");
    await supervisor.stop();
    expect(isAlive(second)).toBe(false);
    expect(supervisor.restarts).toBe(1);
  });

  it("forgets earlier crashes once a run has lasted", async () => {
    // Crashes at once on its first three runs, then after 2.5 s each time. A run counts as lasting
    // after 1.5 s: well above what starting node takes on a busy machine, which is part of a run.
    const { supervisor, lines } = supervise(
      "const f = require('path').join(require('os').tmpdir(), 'gantry-sup-' + process.ppid); const fs = require('fs'); const n = fs.existsSync(f) ? Number(fs.readFileSync(f, 'utf8')) : 0; fs.writeFileSync(f, String(n + 1)); setTimeout(() => process.exit(1), n < 3 ? 0 : 2500)",
      { stableAfterMs: 1_500, maxDelayMs: 1_000 },
    );
    await supervisor.start();
    await waitFor(async () => lines.filter((l) => l.includes("stopped unexpectedly")).length >= 4, { timeoutMs: 20_000, what: "four crashes" });
    await supervisor.stop();
    const delays = lines.filter((l) => l.includes("stopped unexpectedly")).map((l) => /in (\d+) ms/.exec(l)?.[1]);
    expect(delays.slice(0, 4)).toEqual(["100", "200", "400", "100"]);
    const { rmSync } = await import("node:fs");
    rmSync(`${(await import("node:os")).tmpdir()}/gantry-sup-${process.pid}`, { force: true });
  });

  it("stops a child that ignores SIGTERM with SIGKILL, and does not restart it", async () => {
    const { supervisor, lines, output } = supervise("process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)", { stopTimeoutMs: 300 });
    const pid = pidOf(await supervisor.start());
    // Its SIGTERM handler is in place once it says so (a loaded machine can take longer than any fixed wait to start node).
    await waitFor(async () => output.some((l) => l.includes("ready")), { timeoutMs: 20_000, what: "the child to be ready" });
    const started = Date.now();
    await supervisor.stop();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(isAlive(pid)).toBe(false);
    expect(lines.some((l) => l.includes("stopped unexpectedly"))).toBe(false);
  });

  it("keeps retrying a unit that cannot be started again, with backoff", async () => {
    let attempts = 0;
    const lines: string[] = [];
    const supervisor = new Supervisor({
      name: "flaky",
      log: (m) => lines.push(m),
      initialDelayMs: 50,
      start: () => {
        attempts++;
        if (attempts >= 2 && attempts <= 3) throw new Error("port 5432 is taken\nmore detail");
        return startChild({ name: "flaky", ...node(attempts === 1 ? "process.exit(2)" : "setInterval(() => {}, 1000)"), output: () => {} });
      },
    });
    await supervisor.start();
    await waitFor(async () => supervisor.restarts === 1, { timeoutMs: 5_000, what: "the restart" });
    expect(lines.filter((l) => l.startsWith("flaky could not be started again: port 5432 is taken; trying again in "))).toHaveLength(2);
    expect(lines.filter((l) => l.includes("stopped unexpectedly"))).toEqual(["flaky stopped unexpectedly (exit code 2); restarting it in 50 ms"]);
    await supervisor.stop();
  });
});
