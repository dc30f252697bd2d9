import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { waitFor } from "../../tests/helpers/factories";
import { killOwned, runOwned, spawnOwned } from "./owned-child";

// Real processes: their process groups read from /proc, their parents killed outright.

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1][0] !== "Z";
  } catch {
    return false;
  }
};
const processGroupOf = (pid: number) => Number(fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[2]);

describe("owned children", () => {
  it("run in a process group of their own, so a Ctrl-C at the terminal does not reach them", () => {
    const child = spawnOwned("sleep", ["30"], { stdio: "ignore" });
    try {
      expect(processGroupOf(child.pid!)).toBe(child.pid);
      expect(processGroupOf(child.pid!)).not.toBe(processGroupOf(process.pid));
    } finally {
      killOwned(child);
    }
  });

  it("die with the process that started them when it is killed outright", async () => {
    const module = path.resolve("server/process/owned-child.ts");
    const parent = spawn(process.execPath, ["--import", "tsx", "-e", `import(${JSON.stringify(module)}).then(({ spawnOwned }) => { const c = spawnOwned("sleep", ["30"], { stdio: "ignore" }); console.log(c.pid); setInterval(() => {}, 1000); })`], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    parent.stdout!.on("data", (d: Buffer) => (out += d));
    const pid = await waitFor(async () => Number(out.trim()) || null, { timeoutMs: 20_000, what: "the child's pid" });
    // Tied to its parent once it runs the command: the death signal is set before the exec.
    await waitFor(async () => fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "sleep", { timeoutMs: 20_000, what: "the child to run its command" });
    parent.kill("SIGKILL");
    await waitFor(async () => !isAlive(pid), { timeoutMs: 10_000, intervalMs: 10, what: "the child to die with its parent" });
  });

  it("are killed with everything they started", async () => {
    const child = spawnOwned("sh", ["-c", "sleep 30 & echo $!; wait"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d));
    const grandchild = await waitFor(async () => Number(out.trim()) || null, { what: "the grandchild's pid" });
    killOwned(child);
    await waitFor(async () => !isAlive(grandchild) && !isAlive(child.pid!), { timeoutMs: 2_000, what: "both to die" });
  });

  it("runs a command to its end, and stops it when the signal aborts", async () => {
    expect(await runOwned("sh", ["-c", "echo out; echo err >&2"])).toEqual({ stdout: "out\n", stderr: "err\n" });
    await expect(runOwned("sh", ["-c", "exit 3"])).rejects.toThrow("sh exited with code 3");
    const controller = new AbortController();
    const running = runOwned("sleep", ["30"], { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("stopped by the test")), 100);
    await expect(running).rejects.toThrow("stopped by the test");
  });
});
