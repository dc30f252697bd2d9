-- A rollout a person stopped ends "cancelled", apart from one the failure threshold stopped ("aborted").
ALTER TYPE "DeploymentStatus" ADD VALUE 'cancelled';
