import { databaseUrl } from "../server/db";
import { migrate } from "../server/db/migrate";
import { prepareQueue } from "../worker/worker";

// `npm run db:migrate`: applies Gantry's and the queue's migrations to DATABASE_URL.
const url = databaseUrl();
const applied = await migrate({ url, log: console.log });
await prepareQueue(url);
console.log(applied.length ? `Applied ${applied.length} migration(s)` : "The database is up to date");
