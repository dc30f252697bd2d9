import { execFile, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { RigDevice } from "./sshd-rig";

// A real single-node Slurm (Debian's slurmctld + slurmd + munge, and slurmdbd on the local
// MariaDB when one answers, so sacct works) started by the shared scripts in
// ../shared/infra/slurm/ (beside the checkout, as CI places it), in a folder and on ports of its
// own. A rig device becomes its login host: bin/ wrappers give the Slurm commands its
// SLURM_CONF, and jobs inherit the PATH with the stand-in trainer on it.

const run = promisify(execFile);
const SCRIPTS = path.resolve("../shared/infra/slurm");
const COMMANDS = ["sbatch", "squeue", "scontrol", "sacct", "scancel", "sinfo", "srun"];

export interface TestSlurm {
  conf: string;
  root: string;
  hasAccounting: boolean;
  /** Runs a Slurm client command against this cluster. */
  client(command: string, args: string[]): string;
  stop(): Promise<void>;
}

/** Why a real Slurm cannot be started here, or null when it can. */
export function slurmSkipReason(): string | null {
  if (!fs.existsSync(path.join(SCRIPTS, "start.sh"))) return `${SCRIPTS}/start.sh is absent (CI places shared/ beside the checkout)`;
  const missing = ["slurmctld", "slurmd", "munged", "mungekey", "sbatch", "scontrol"].filter((c) => {
    try {
      execFileSync("sh", ["-c", `command -v ${c}`], { stdio: "ignore", env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) return `Slurm is not installed (${missing.join(", ")} missing): apt-get install -y --no-install-recommends slurmd slurmctld slurm-client munge slurmdbd`;
  if (process.getuid?.() !== 0) return "the single-node Slurm of the tests runs its daemons as root";
  return null;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function freePortBase(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    if ((await portFree(base)) && (await portFree(base + 1)) && (await portFree(base + 2))) return base;
  }
  throw new Error("No three free ports in a row for Slurm");
}

function mariaDbAnswers(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(3306, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
    s.setTimeout(1000, () => (s.destroy(), resolve(false)));
  });
}

export async function startSlurm(): Promise<TestSlurm> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-slurm-"));
  const base = await freePortBase();
  const hasAccounting = (await mariaDbAnswers()) && fs.existsSync("/usr/sbin/slurmdbd");
  const db = `slurm_acct_gantry_${base}`;
  const env = { ...process.env, R: root, PORT_BASE: String(base), ...(hasAccounting ? { WITH_DBD: "1", DBD_DB: db } : {}) };
  const conf = path.join(root, "etc", "slurm.conf");
  const stop = async () => {
    await run("bash", [path.join(SCRIPTS, "stop.sh")], { env: { ...env, WIPE: "1" } }).catch(() => {});
    if (hasAccounting) await run("mysql", ["-h127.0.0.1", "-uroot", "-e", `DROP DATABASE IF EXISTS ${db}`]).catch(() => {});
  };
  try {
    await run("bash", [path.join(SCRIPTS, "start.sh")], { env, timeout: 60_000 });
  } catch (error) {
    const logs = fs.existsSync(path.join(root, "log")) ? fs.readdirSync(path.join(root, "log")).map((f) => `${f}: ${fs.readFileSync(path.join(root, "log", f), "utf8").slice(-1500)}`).join("\n") : "";
    await stop();
    throw new Error(`Slurm did not start: ${(error as Error).message}\n${logs}`);
  }
  return {
    conf,
    root,
    hasAccounting,
    client: (command, args) => execFileSync("timeout", ["10", command, ...args], { env: { ...process.env, SLURM_CONF: conf }, encoding: "utf8" }),
    stop,
  };
}

/** Makes a rig device a login host of the cluster: its sessions' Slurm commands reach it. */
export function makeSlurmLoginHost(device: RigDevice, slurm: TestSlurm): void {
  for (const command of COMMANDS) {
    const file = path.join(device.dir, "bin", command);
    fs.writeFileSync(file, `#!/bin/sh\n# ${command} of the test cluster.\nexport SLURM_CONF='${slurm.conf}'\nexec /usr/bin/${command} "$@"\n`, { mode: 0o755 });
  }
}
