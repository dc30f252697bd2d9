import http from "node:http";
import { recordPeerAddress } from "../server/auth/rate-limit";

// The portal's web process (`npm start` runs it): Next.js behind a plain Node server that adds
// the address each request came from to X-Forwarded-For before Next sees it. Route handlers
// cannot see the connection, and `next start` passes a caller's own X-Forwarded-For through
// unchanged, so without this anyone could pick the address sign-in limits count against.
// clientAddress (server/auth/rate-limit.ts) reads the header back, believing earlier entries
// only from the proxies in TRUSTED_PROXIES.

const isDev = process.argv.includes("--dev");
const port = Number(process.env.PORT ?? 3000);

async function main() {
  // As `next start` and `next dev` do; Next reads it when it loads.
  (process.env as Record<string, string>).NODE_ENV ??= isDev ? "development" : "production";
  const { default: next } = await import("next");
  const app = next({ dev: isDev, port, hostname: "localhost", ...(isDev ? { turbopack: true } : {}) });
  await app.prepare();
  const handle = app.getRequestHandler();
  const server = http.createServer((req, res) => {
    recordPeerAddress(req.headers, req.socket.remoteAddress);
    void handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, resolve);
  });
  console.log(`Portal listening on port ${port}${isDev ? " (development)" : ""}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
