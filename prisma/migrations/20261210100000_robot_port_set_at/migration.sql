-- When an arm's port was last set: a set-up check made on that port before then was of whatever
-- arm was on it, not this one. Existing arms take their last change as the time.
ALTER TABLE "Robot" ADD COLUMN "portSetAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;
UPDATE "Robot" SET "portSetAt" = "updatedAt";
