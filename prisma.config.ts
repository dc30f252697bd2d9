import { defineConfig } from "prisma/config";

// The CLI is used at development time only (generate, migrate diff); the portal applies
// migrations itself at start (server/db/migrate.ts), so it never needs the CLI's engines.
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://localhost:5432/gantry" },
});
