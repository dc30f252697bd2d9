import { auditRouter } from "./routers/audit";
import { endpointsRouter } from "./routers/endpoints";
import { authRouter } from "./routers/auth";
import { jobsRouter } from "./routers/jobs";
import { modelsRouter } from "./routers/models";
import { datasetsRouter } from "./routers/datasets";
import { datasetImportsRouter } from "./routers/dataset-imports";
import { fleetRouter } from "./routers/fleet";
import { invitesRouter, orgsRouter } from "./routers/orgs";
import { systemRouter } from "./routers/system";
import { tokensRouter } from "./routers/tokens";
import { trainingRouter } from "./routers/training";
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
  endpoints: endpointsRouter,
  system: systemRouter,
  training: trainingRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
