import type { ApiRoute } from "./registry";
import { agentRoutes } from "./routes/agents";
import { captureRoutes } from "./routes/captures";
import { compatRoutes } from "./routes/compat";
import { edgeRoutes } from "./routes/edge";
import { libraryRoutes } from "./routes/library";
import { setupAndScoringRoutes } from "./routes/plugplay-databench";
import { systemRoutes } from "./routes/system";

/** Every documented route, in the reference's order. */
export const apiRoutes: ApiRoute[] = [...systemRoutes, ...edgeRoutes, ...agentRoutes, ...libraryRoutes, ...captureRoutes, ...compatRoutes, ...setupAndScoringRoutes];
