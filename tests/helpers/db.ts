import { createDb, type Db } from "../../server/db";

let shared: Db | undefined;

/** One Prisma client per test file, on the run's database. */
export function testDb(): Db {
  shared ??= createDb(process.env.DATABASE_URL!, 5);
  return shared;
}
