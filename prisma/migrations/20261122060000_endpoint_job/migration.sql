-- The job that last deployed an endpoint, so its page can follow the deploy's steps.
ALTER TABLE "Endpoint" ADD COLUMN "jobId" UUID;
