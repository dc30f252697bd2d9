-- A scoring may make v's visual descriptors with one of the organisation's image-encoder model
-- versions. No foreign key: a version deleted while the scoring waits must fail it, saying so,
-- not quietly turn it into a scoring without the encoder; the report names the model it used.
ALTER TABLE "DatasetEvaluation" ADD COLUMN "imageEncoderVersionId" UUID;
