import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/prisma/client";
import { env } from "./env";

export type Db = PrismaClient;
/** A Prisma transaction client, or the client itself: services accept either. */
export type Tx = Omit<PrismaClient, "$connect" | "$disconnect" | "$on" | "$transaction" | "$extends">;

export function databaseUrl(): string {
  const url = env().DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set: start Gantry with `npm start`, which starts the embedded Postgres and sets it");
  return url;
}

export function createDb(url = databaseUrl(), max = 10): Db {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max }) });
}

const globalForDb = globalThis as unknown as { gantryDb?: Db };

/** The process-wide Prisma client. */
export function db(): Db {
  globalForDb.gantryDb ??= createDb();
  return globalForDb.gantryDb;
}
