import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { HostFacts } from "../server/hardware/hardware.schemas";

// What the portal shows about the agent's host. Each probe has a time limit: a Python that
// hangs importing a broken package must not hold up the connection. Something absent is
// reported as absent, with why, rather than left out.

const PROBE_TIMEOUT_MS = 10_000;

function run(file: string, args: string[], timeoutMs = PROBE_TIMEOUT_MS): Promise<{ ok: true; out: string } | { ok: false; why: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve({ ok: true, out: `${stdout}`.trim() || `${stderr}`.trim() });
      const e = error as NodeJS.ErrnoException & { killed?: boolean };
      if (e.code === "ENOENT") return resolve({ ok: false, why: `${file} is not installed (not on PATH)` });
      if (e.killed) return resolve({ ok: false, why: `${file} did not answer within ${timeoutMs / 1000} s` });
      resolve({ ok: false, why: `${stderr}`.trim().split("\n").pop()?.slice(0, 300) || e.message });
    });
  });
}

/** The Python the agent would use for LeRobot: GANTRY_PYTHON, else python3. */
const pythonBinary = () => process.env.GANTRY_PYTHON || "python3";

async function probePython(): Promise<HostFacts["python"]> {
  const r = await run(pythonBinary(), ["--version"]);
  return r.ok ? { version: r.out.replace(/^Python\s+/i, "").slice(0, 100), note: null } : { version: null, note: r.why.slice(0, 500) };
}

async function probeLerobot(hasPython: boolean): Promise<HostFacts["lerobot"]> {
  if (!hasPython) return { version: null, note: "no Python to look in" };
  // Package metadata, not `import lerobot`: importing pulls in torch and can take a minute.
  const r = await run(pythonBinary(), ["-c", "import importlib.metadata as m\ntry:\n print(m.version('lerobot'))\nexcept m.PackageNotFoundError:\n print('')"]);
  if (!r.ok) return { version: null, note: r.why.slice(0, 500) };
  return r.out ? { version: r.out.slice(0, 100), note: null } : { version: null, note: `lerobot is not installed in ${pythonBinary()}` };
}

/** USB serial adapters: each /dev/ttyUSB* and /dev/ttyACM*, with its stable /dev/serial/by-id name when there is one. */
export function listSerialAdapters(devDir = "/dev"): HostFacts["serialAdapters"] {
  const byIdDir = path.join(devDir, "serial", "by-id");
  const byId = new Map<string, string>();
  try {
    for (const name of fs.readdirSync(byIdDir)) {
      try {
        byId.set(fs.realpathSync(path.join(byIdDir, name)), path.join(byIdDir, name));
      } catch {
        /* a dangling link: the adapter was just unplugged */
      }
    }
  } catch {
    /* no udev by-id folder (no adapter plugged in, or not Linux) */
  }
  let nodes: string[] = [];
  try {
    nodes = fs.readdirSync(devDir).filter((n) => /^tty(USB|ACM)\d+$/.test(n)).map((n) => path.join(devDir, n));
  } catch {
    /* no /dev */
  }
  for (const target of byId.keys()) if (!nodes.includes(target)) nodes.push(target);
  return nodes.sort().slice(0, 256).map((node) => ({ path: node, byId: byId.get(node) ?? null }));
}

function osName(): string {
  try {
    const release = fs.readFileSync("/etc/os-release", "utf8");
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(release);
    if (pretty) return pretty[1].slice(0, 200);
  } catch {
    /* not Linux, or a minimal image */
  }
  return `${os.type()} ${os.release()}`.slice(0, 200);
}

export async function collectHostFacts(agentVersion: string): Promise<HostFacts> {
  const python = await probePython();
  const lerobot = await probeLerobot(python.version !== null);
  const cpus = os.cpus();
  return {
    hostname: os.hostname().slice(0, 255),
    os: osName(),
    kernel: `${os.type()} ${os.release()}`.slice(0, 200),
    arch: os.arch(),
    cpu: { model: (cpus[0]?.model ?? "unknown").trim().slice(0, 200), cores: cpus.length },
    memoryBytes: os.totalmem(),
    python,
    lerobot,
    serialAdapters: listSerialAdapters(),
    node: process.version,
    agentVersion: agentVersion.slice(0, 50),
  };
}
