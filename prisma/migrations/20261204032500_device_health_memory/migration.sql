-- Health samples keep the memory a device had available, so its health chart can show memory
-- beside load, free disk and how long the check took.
ALTER TABLE "DeviceHealthSample" ADD COLUMN "memoryAvailableBytes" BIGINT;
