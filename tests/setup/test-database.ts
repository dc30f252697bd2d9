import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../server/db/embedded";
import { migrate } from "../../server/db/migrate";
import { prepareQueue } from "../../worker/worker";

// Tests use the running Postgres when there is one (TEST_DATABASE_URL, else the local
// server on 5432), otherwise an embedded one; each run gets a database of its own.

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(label = "test"): Promise<TestDatabase> {
  let adminUrl = process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
  let embedded: EmbeddedDatabase | null = null;
  if (!(await canConnect(adminUrl))) {
    embedded = await startEmbeddedPostgres({ home: path.resolve(".gantry/test"), port: Number(process.env.TEST_EMBEDDED_PG_PORT ?? 54330) });
    adminUrl = embedded.url;
  }
  const name = `gantry_${label}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 7)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  await migrate({ url: url.toString() });
  await prepareQueue(url.toString());
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
      if (embedded) await embedded.stop();
    },
  };
}
