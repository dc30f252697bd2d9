-- A raw episode's files in the blob store, from registration until it is in the dataset.
ALTER TABLE "Episode" ADD COLUMN "rawFiles" JSONB;
