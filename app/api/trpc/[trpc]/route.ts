import { fetchRequestHandler } from "@trpc/server/adapters/fetch";
import { appRouter } from "@/server/api/root";
import { createContext } from "@/server/api/context";
import { CheckedTrpcRequest } from "@/server/api/trpc-request";
import { countEventStream } from "@/server/api/sse";

export const dynamic = "force-dynamic";

const handler = async (request: Request) => {
  const req = new CheckedTrpcRequest(request);
  const response = await fetchRequestHandler({
    endpoint: "/api/trpc",
    req,
    router: appRouter,
    createContext: async ({ info }) => req.admit(await createContext(req.headers, info.connectionParams)),
    onError({ error, path }) {
      if (error.code === "INTERNAL_SERVER_ERROR") console.error(`tRPC ${path}:`, error.cause ?? error);
    },
  });
  // A subscription answers with an event stream: counted as open until it ends. Named by its
  // procedure (only a real subscription's answer is an event stream).
  return countEventStream(response, new URL(request.url).pathname.split("/").pop() ?? "trpc");
};

export { handler as GET, handler as POST };
