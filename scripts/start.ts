import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { env, SettingsError } from "../server/env";
import { EmbeddedPostgresError, startEmbeddedPostgres, type EmbeddedDatabase } from "../server/db/embedded";
import { migrate } from "../server/db/migrate";
import { prepareQueue } from "../worker/worker";

// `npm start`: the embedded database (unless DATABASE_URL is set), migrations, a production
// build when the sources changed, then the portal, the worker and the model server. One Ctrl-C stops it all.

const log = (m: string) => console.log(`[gantry] ${m}`);
const isDev = process.argv.includes("--dev");
const isDatabaseOnly = process.argv.includes("--database-only");

async function main() {
  const settings = env();
  let embedded: EmbeddedDatabase | null = null;
  let url = settings.DATABASE_URL;
  if (!url) {
    embedded = await startEmbeddedPostgres({ home: settings.GANTRY_HOME, port: settings.EMBEDDED_PG_PORT, systemDir: settings.EMBEDDED_PG_SYSTEM_DIR, log });
    url = embedded.url;
    log(`Embedded Postgres running on 127.0.0.1:${settings.EMBEDDED_PG_PORT} (data in ${embedded.dataDir})`);
  } else {
    log(`Using the database at ${new URL(url).host}`);
  }
  const applied = await migrate({ url, log });
  if (applied.length) log(`Applied ${applied.length} migration(s)`);
  await prepareQueue(url);
  if (isDatabaseOnly) return holdDatabase(embedded, url);

  const childEnv = { ...process.env, DATABASE_URL: url, NEXTAUTH_URL: settings.PUBLIC_URL, GANTRY_HOME: settings.GANTRY_HOME, PORT: String(settings.PORT) };
  if (!isDev) buildIfNeeded(childEnv);

  const children: ChildProcess[] = [];
  let isStopping = false;
  const stop = async (code: number) => {
    if (isStopping) return;
    isStopping = true;
    log("Stopping…");
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once("exit", () => resolve());
      c.kill("SIGTERM");
      setTimeout(() => c.kill("SIGKILL"), 15_000).unref();
    })));
    if (embedded) await embedded.stop().catch((e) => log(`Could not stop Postgres cleanly: ${e.message}`));
    log("Stopped");
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  const run = (name: string, cmd: string, args: string[]) => {
    const child = spawn(cmd, args, { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
    const prefix = (chunk: Buffer) => chunk.toString().split("\n").filter(Boolean).map((l) => `[${name}] ${l}`).join("\n") + "\n";
    child.stdout!.on("data", (c: Buffer) => process.stdout.write(prefix(c)));
    child.stderr!.on("data", (c: Buffer) => process.stderr.write(prefix(c)));
    child.on("exit", (code, signal) => {
      if (isStopping) return;
      log(`${name} exited (${signal ?? code}); stopping everything`);
      void stop(code || 1);
    });
    children.push(child);
  };
  const bin = (name: string) => path.resolve("node_modules/.bin", name);
  run("web", bin("next"), [isDev ? "dev" : "start", "-p", String(settings.PORT)]);
  run("worker", bin("tsx"), ["worker/index.ts"]);
  run("serve", bin("tsx"), ["serve/index.ts"]);
  log(`Portal on ${settings.PUBLIC_URL}`);
}

/** `npm start -- --database-only`: the database, migrated, until Ctrl-C (for psql, or a portal run elsewhere). */
function holdDatabase(embedded: EmbeddedDatabase | null, url: string) {
  const shown = new URL(url);
  shown.password = "";
  log(`Database ready at ${shown.toString()}${embedded ? ` (password in ${path.join(env().GANTRY_HOME, "pg-password")})` : ""}; Ctrl-C stops it`);
  const stop = async () => {
    await embedded?.stop().catch((e) => log(`Could not stop Postgres cleanly: ${e.message}`));
    log("Stopped");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

/** Builds the portal when no build exists or a source file is newer than it. */
function buildIfNeeded(childEnv: NodeJS.ProcessEnv) {
  const buildId = path.resolve(".next/BUILD_ID");
  const builtAt = fs.existsSync(buildId) ? fs.statSync(buildId).mtimeMs : 0;
  const newest = Math.max(...["app", "components", "server", "public", "next.config.ts", "package-lock.json", "postcss.config.mjs"].map(newestMtime));
  if (builtAt > newest) return;
  log(builtAt ? "Sources changed since the last build; rebuilding the portal" : "Building the portal (first start only)…");
  const result = spawnSync(path.resolve("node_modules/.bin/next"), ["build"], { stdio: "inherit", env: { ...childEnv, NEXT_TELEMETRY_DISABLED: "1" } });
  if (result.status !== 0) throw new Error("The portal build failed; see the output above");
}

function newestMtime(p: string): number {
  if (!fs.existsSync(p)) return 0;
  const stat = fs.statSync(p);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of fs.readdirSync(p, { withFileTypes: true })) {
    if (entry.name === "generated" || entry.name === "node_modules") continue;
    newest = Math.max(newest, newestMtime(path.join(p, entry.name)));
  }
  return newest;
}

main().catch((error) => {
  console.error(error instanceof SettingsError || error instanceof EmbeddedPostgresError ? `[gantry] ${error.message}` : error);
  process.exit(1);
});
