import { fetchRequestHandler } from "@trpc/server/adapters/fetch";
import { appRouter } from "@/server/api/root";
import { createContext } from "@/server/api/context";
import { CheckedTrpcRequest } from "@/server/api/trpc-request";

export const dynamic = "force-dynamic";

const handler = (request: Request) => {
  const req = new CheckedTrpcRequest(request);
  return fetchRequestHandler({
    endpoint: "/api/trpc",
    req,
    router: appRouter,
    createContext: async ({ info }) => req.admit(await createContext(req.headers, info.connectionParams)),
    onError({ error, path }) {
      if (error.code === "INTERNAL_SERVER_ERROR") console.error(`tRPC ${path}:`, error.cause ?? error);
    },
  });
};

export { handler as GET, handler as POST };
