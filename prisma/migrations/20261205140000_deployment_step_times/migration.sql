-- When each step of a device's deployment began, for its timeline.
ALTER TABLE "DeploymentTarget" ADD COLUMN "stepTimes" JSONB NOT NULL DEFAULT '{}';
