import { auditRouter } from "./routers/audit";
import { endpointsRouter } from "./routers/endpoints";
import { authRouter } from "./routers/auth";
import { jobsRouter } from "./routers/jobs";
import { modelsRouter } from "./routers/models";
import { datasetsRouter } from "./routers/datasets";
import { datasetImportsRouter } from "./routers/dataset-imports";
import { fleetRouter } from "./routers/fleet";
import { hardwareRouter } from "./routers/hardware";
import { invitesRouter, orgsRouter } from "./routers/orgs";
import { systemRouter } from "./routers/system";
import { tokensRouter } from "./routers/tokens";
import { trainingRouter } from "./routers/training";
import { evaluationRouter } from "./routers/evaluation";
import { capturesRouter } from "./routers/captures";
import { createCallerFactory, router } from "./trpc";

export const appRouter = router({
  auth: authRouter,
  orgs: orgsRouter,
  invites: invitesRouter,
  tokens: tokensRouter,
  audit: auditRouter,
  jobs: jobsRouter,
  models: modelsRouter,
  datasets: datasetsRouter,
  datasetImports: datasetImportsRouter,
  fleet: fleetRouter,
  hardware: hardwareRouter,
  endpoints: endpointsRouter,
  system: systemRouter,
  training: trainingRouter,
  evaluation: evaluationRouter,
  captures: capturesRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
