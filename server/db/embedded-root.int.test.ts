import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { waitFor } from "../../tests/helpers/factories";
import { freePort } from "../../tests/helpers/sshd-rig";

// The quick start as a newcomer on a fresh server runs it: as root, from a clean checkout in
// a folder only root can enter (/root/gantry, or one made by mktemp -d). The embedded Postgres
// runs as the `postgres` user, who cannot reach that folder.

const isRoot = process.getuid?.() === 0;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-root-start-"));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A clean checkout of the working tree's tracked files, with the installed packages linked in (hard links: the same files, under the private folder). */
function checkoutInto(dir: string): void {
  const files = execFileSync("git", ["ls-files", "-z"], { encoding: "utf8" }).split("\0").filter(Boolean);
  for (const f of files) {
    if (!fs.existsSync(f)) continue;
    fs.mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
    fs.copyFileSync(f, path.join(dir, f));
  }
  execFileSync("cp", ["-al", path.resolve("node_modules"), path.join(dir, "node_modules")]);
  // What `npm install` does after installing: generate the Prisma client.
  execFileSync(process.execPath, ["scripts/prisma-generate.mjs"], { cwd: dir, stdio: "ignore" });
}

describe.skipIf(!isRoot)("the start as root in a private folder", () => {
  it("brings the embedded database up where the postgres user can reach it, and again on the next start", { timeout: 240_000 }, async () => {
    const privateDir = path.join(scratch, "root-only");
    fs.mkdirSync(privateDir, { mode: 0o700 });
    const checkout = path.join(privateDir, "gantry");
    checkoutInto(checkout);
    // Where the cluster and the binaries go instead; the real default is /var/lib/gantry.
    const systemDir = path.join(scratch, "system");
    fs.chmodSync(scratch, 0o755);
    // One the system says is free now: a random one could be a connection's own (ephemeral) port.
    const port = await freePort();
    // No DATABASE_URL and no GANTRY_HOME: the embedded default, under the checkout's .gantry/.
    const { DATABASE_URL: _url, GANTRY_HOME: _home, ...inherited } = process.env;
    const env = { ...inherited, EMBEDDED_PG_PORT: String(port), EMBEDDED_PG_SYSTEM_DIR: systemDir };

    const startOnce = async () => {
      const child = spawn(path.join(checkout, "node_modules/.bin/tsx"), ["scripts/start.ts", "--database-only"], { cwd: checkout, env, stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (d: Buffer) => (output += d));
      child.stderr.on("data", (d: Buffer) => (output += d));
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      await Promise.race([
        waitFor(async () => output.includes("Database ready"), { timeoutMs: 180_000, what: "the database to start" }),
        exited.then((code) => {
          throw new Error(`The start stopped (exit ${code}):\n${output}`);
        }),
      ]);
      const password = fs.readFileSync(path.join(checkout, ".gantry", "pg-password"), "utf8").trim();
      const client = new pg.Client({ connectionString: `postgresql://gantry:${encodeURIComponent(password)}@127.0.0.1:${port}/gantry` });
      await client.connect();
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM "Org"`);
      await client.end();
      child.kill("SIGINT");
      expect(await exited).toBe(0);
      return { output, orgs: Number(rows[0].n) };
    };

    const first = await startOnce();
    expect(first.output).not.toMatch(/EACCES|at .*\.ts:\d+/);
    expect(first.output).toMatch(/cannot reach .*gantry\/\.gantry: the embedded database is kept in/);
    expect(first.orgs).toBe(0);
    const dataDir = fs.readFileSync(path.join(checkout, ".gantry", "pg-location"), "utf8").trim();
    expect(dataDir.startsWith(systemDir + path.sep)).toBe(true);
    expect(fs.statSync(dataDir).uid).toBe(Number(execFileSync("id", ["-u", "postgres"]).toString()));
    // Nothing of the private folder's modes was changed to get there.
    expect(fs.statSync(privateDir).mode & 0o777).toBe(0o700);

    const second = await startOnce();
    expect(second.output).not.toMatch(/copying the embedded Postgres binaries|Creating the embedded Postgres cluster/);
  });
});
