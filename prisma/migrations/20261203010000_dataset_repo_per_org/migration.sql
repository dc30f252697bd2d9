-- Repo ids belong to an organisation: two organisations may each have `lab/pick-cube`, and their
-- folders are apart (EDGE_UPLOAD_DIR/<org id>/<repo id>, DATASETS_DIR/<org id>/<repo id>).
DROP INDEX "Dataset_repoId_key";
CREATE UNIQUE INDEX "Dataset_orgId_repoId_key" ON "Dataset"("orgId", "repoId");
