-- A per-organisation event sequence, taken under the Org row's lock, so an organisation's
-- events are numbered in commit order and a stream can resume after any of them safely.
ALTER TABLE "Org" ADD COLUMN "lastEventSeq" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "JobEvent" ADD COLUMN "orgSeq" INTEGER;

UPDATE "JobEvent" e SET "orgSeq" = n.rn
FROM (SELECT "id", row_number() OVER (PARTITION BY "orgId" ORDER BY "id") AS rn FROM "JobEvent") n
WHERE n."id" = e."id";
UPDATE "Org" o SET "lastEventSeq" = COALESCE((SELECT max("orgSeq") FROM "JobEvent" e WHERE e."orgId" = o."id"), 0);

ALTER TABLE "JobEvent" ALTER COLUMN "orgSeq" SET NOT NULL;
DROP INDEX "JobEvent_orgId_id_idx";
CREATE UNIQUE INDEX "JobEvent_orgId_orgSeq_key" ON "JobEvent"("orgId", "orgSeq");
