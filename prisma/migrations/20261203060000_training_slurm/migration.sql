-- Runs on Slurm targets: the job id sbatch answered with, and the job's last state and reason
-- as Slurm reported them (PENDING with Resources, RUNNING, TIMEOUT...), shown as they are.
ALTER TABLE "TrainingRun" ADD COLUMN "slurmJobId" TEXT;
ALTER TABLE "TrainingRun" ADD COLUMN "slurmState" TEXT;
ALTER TABLE "TrainingRun" ADD COLUMN "slurmReason" TEXT;
