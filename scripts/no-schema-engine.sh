#!/bin/sh
# Stands in for Prisma's native schema engine, which the CLI would otherwise download.
# Gantry applies its SQL migrations itself (server/db/migrate.ts); only `prisma generate` runs.
echo "The Prisma schema engine is not installed: apply migrations with 'npm run db:migrate'." >&2
exit 1
