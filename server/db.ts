import { PrismaPg } from "@prisma/adapter-pg";
import { Prisma, PrismaClient } from "./generated/prisma/client";
import { env } from "./env";

export type Db = PrismaClient;
/** A Prisma transaction client, or the client itself: services accept either. */
export type Tx = Omit<PrismaClient, "$connect" | "$disconnect" | "$on" | "$transaction" | "$extends">;

/** A write refused by a unique index or constraint (Prisma's P2002). */
export const isUniqueViolation = (error: unknown) => error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002";

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
