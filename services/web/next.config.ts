import type { NextConfig } from "next";

// No rewrites here: server.mjs proxies /api, /cex, /ws-api, /ws and /stream to the exchange
// (targets read at start, Host header kept for the same-origin WebSocket check).
const nextConfig: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
};

export default nextConfig;
