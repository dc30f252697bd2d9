import fs from "node:fs";
import path from "node:path";
import { env, SettingsError } from "../server/env";
import { s3StoreFromSettings } from "../server/storage/blobs";
import { EmbeddedPostgresError, startEmbeddedPostgres, type EmbeddedDatabase } from "../server/db/embedded";
import { migrate } from "../server/db/migrate";
import { createDb } from "../server/db";
import { removeCopiesOfDeletedDatasets } from "../server/datasets/build-files";
import { sweepArchiveUploads } from "../server/datasets/archive-uploads";
import { prepareQueue } from "../worker/worker";
import { startChild, Supervisor, type Unit } from "./supervisor";
import { buildAgentIfNeeded } from "./agent-build";
import { buildPortalIfNeeded } from "./portal-build";

// `npm start`: the embedded database (unless DATABASE_URL is set), migrations, a production
// build when the sources changed, then the portal, the worker and the model server, each
// started again if it dies. One Ctrl-C stops it all.

const log = (m: string) => console.log(`[gantry] ${m}`);
const isDev = process.argv.includes("--dev");
const isDatabaseOnly = process.argv.includes("--database-only");

const PROCESS_NAMES = ["web", "worker", "serve"] as const;
type ProcessName = (typeof PROCESS_NAMES)[number];

/** `--only worker,serve`: the processes to run here (a second machine may run only workers). */
function chosenProcesses(): ProcessName[] {
  const at = process.argv.findIndex((a) => a === "--only" || a.startsWith("--only="));
  if (at === -1) return [...PROCESS_NAMES];
  const arg = process.argv[at].startsWith("--only=") ? process.argv[at].slice("--only=".length) : (process.argv[at + 1] ?? "");
  const names = arg.split(",").map((n) => n.trim()).filter(Boolean);
  const unknown = names.filter((n) => !PROCESS_NAMES.includes(n as ProcessName));
  if (!names.length || unknown.length) throw new SettingsError(`--only takes a comma-separated list of ${PROCESS_NAMES.join(", ")}${unknown.length ? `; ${unknown.join(", ")} is not one` : ""}`);
  return names as ProcessName[];
}

async function main() {
  const settings = env();
  const only = chosenProcesses();
  // Object storage is checked before anything starts: a wrong key or bucket is one line now, not
  // a failed upload later.
  const bucket = s3StoreFromSettings(settings);
  if (bucket) {
    await bucket.check().catch((error: Error) => {
      throw new SettingsError(error.message);
    });
    log(`Blobs are kept in ${settings.S3_BUCKET} at ${settings.S3_ENDPOINT}`);
  }
  let database: Supervisor<EmbeddedDatabase & Unit> | null = null;
  let url = settings.DATABASE_URL;
  if (!url) {
    // The embedded server is supervised like the rest: if it dies, it is started again on the
    // same port and data, and the processes using it reconnect.
    database = new Supervisor<EmbeddedDatabase & Unit>({
      name: "postgres",
      log,
      start: async () => {
        const db = await startEmbeddedPostgres({ home: settings.GANTRY_HOME, port: settings.EMBEDDED_PG_PORT, systemDir: settings.EMBEDDED_PG_SYSTEM_DIR, log });
        return { ...db, description: `pid ${db.pid}`, stop: () => db.stop().catch((e: Error) => log(`Could not stop Postgres cleanly: ${e.message}`)) };
      },
    });
    const embedded: EmbeddedDatabase = await database.start();
    url = embedded.url;
    log(`Embedded Postgres running on 127.0.0.1:${settings.EMBEDDED_PG_PORT} (data in ${embedded.dataDir})`);
  } else {
    log(`Using the database at ${new URL(url).host}`);
  }
  const applied = await migrate({ url, log });
  if (applied.length) log(`Applied ${applied.length} migration(s)`);
  await prepareQueue(url);
  if (isDatabaseOnly) return holdDatabase(database, url);
  if (only.includes("web") || only.includes("worker")) {
    await tidyDatasetsDir(url, settings);
    removeFolderModelUploads(settings);
  }

  const childEnv = { ...process.env, DATABASE_URL: url, NEXTAUTH_URL: settings.PUBLIC_URL, GANTRY_HOME: settings.GANTRY_HOME, PORT: String(settings.PORT) };
  if (!isDev && only.includes("web")) buildPortalIfNeeded(childEnv, log);
  if (only.includes("web")) buildAgentIfNeeded(log);

  // Each process is started again when it dies (with a growing pause if it keeps dying);
  // everything stops only on Ctrl-C or SIGTERM, the database last.
  // tsx is loaded into node itself, so the pid the supervisor watches is the process itself.
  const tsx = (file: string) => ({ command: process.execPath, args: ["--import", "tsx", file] });
  const commands: Record<ProcessName, { command: string; args: string[] }> = {
    // Next behind a server that records each caller's address for the sign-in limits.
    web: { command: process.execPath, args: ["--import", "tsx", "scripts/web.ts", ...(isDev ? ["--dev"] : [])] },
    worker: tsx("worker/index.ts"),
    serve: tsx("serve/index.ts"),
  };
  const children = only.map((name) => new Supervisor({ name, log, start: () => startChild({ name, ...commands[name], env: childEnv }) }));

  let isStopping = false;
  const stop = async () => {
    if (isStopping) return;
    isStopping = true;
    log("Stopping…");
    await Promise.all(children.map((c) => c.stop()));
    await database?.stop();
    log("Stopped");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
  for (const child of children) await child.start();
  if (only.includes("web")) log(`Portal on ${settings.PUBLIC_URL}`);
}

/**
 * This machine's copies of datasets deleted on another machine go (their blobs are swept), and
 * its copies of uploaded archives no upload names any more once a day old, on a machine of web
 * processes as on one of workers: both keep working copies under DATASETS_DIR.
 */
async function tidyDatasetsDir(url: string, settings: { DATASETS_DIR: string }) {
  const db = createDb(url, 1);
  try {
    const n = await removeCopiesOfDeletedDatasets(db, settings);
    if (n) log(`Removed this machine's copies of ${n} deleted dataset${n === 1 ? "" : "s"}`);
    await sweepArchiveUploads(db, settings);
  } catch (error) {
    log(`Could not look for copies of deleted datasets and imported archives: ${(error as Error).message}`);
  } finally {
    await db.$disconnect();
  }
}

/**
 * Resumable model uploads kept what had arrived under GANTRY_HOME/uploads/models before they were
 * rows with their pieces in the blob store; what is left there cannot be resumed (the client is
 * told to start again), so it goes.
 */
function removeFolderModelUploads(settings: { GANTRY_HOME: string }) {
  const dir = path.join(settings.GANTRY_HOME, "uploads", "models");
  if (!fs.existsSync(dir)) return;
  try {
    fs.rmSync(dir, { recursive: true, force: true });
    log(`Removed ${dir}: model uploads begun before they were kept in the blob store cannot be resumed; send them again`);
  } catch (error) {
    log(`Could not remove ${dir} (model uploads begun before they were kept in the blob store): ${(error as Error).message}`);
  }
}

/** `npm start -- --database-only`: the database, migrated, until Ctrl-C (for psql, or a portal run elsewhere). */
function holdDatabase(database: { stop(): Promise<void> } | null, url: string) {
  const shown = new URL(url);
  shown.password = "";
  log(`Database ready at ${shown.toString()}${database ? ` (password in ${path.join(env().GANTRY_HOME, "pg-password")})` : ""}; Ctrl-C stops it`);
  const stop = async () => {
    await database?.stop();
    log("Stopped");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

main().catch((error) => {
  console.error(error instanceof SettingsError || error instanceof EmbeddedPostgresError ? `[gantry] ${error.message}` : error);
  process.exit(1);
});
