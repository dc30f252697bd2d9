-- How many times the worker running a job died under it. A crash gives its attempt back (it is
-- not a failure of the work); a job whose worker died this often ends failed with that reason.
ALTER TABLE "Job" ADD COLUMN "crashes" INTEGER NOT NULL DEFAULT 0;
