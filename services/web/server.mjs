// The web server: Next.js plus a reverse proxy to the exchange, so the browser talks to one
// origin only.
//
// Why not next.config rewrites: Next bakes rewrite destinations into the build
// (routes-manifest.json), so CEX_API_URL could not change at `next start`; and its proxy
// rewrites the Host header to the target's, so the API's same-origin check on the
// `/ws-api/v3` upgrade (Origin must match Host before the session cookie counts) refused
// the user data stream. Here the targets are read when the server starts and the Host is
// kept. In Kubernetes an Ingress routes the same paths the same way.
//
//   /api/*, /cex/*, /ws-api/*  → CEX_API_URL      (default http://127.0.0.1:18200)
//   /ws, /ws/*, /stream        → CEX_GATEWAY_URL  (default http://127.0.0.1:18300)
//   everything else            → Next.js
//
// Usage: node server.mjs [--dev]; PORT (default 3000) and HOSTNAME (default 127.0.0.1);
// CEX_WEB_FORWARDED_ALLOW_IPS: comma-separated proxies whose X-Forwarded-* headers are kept.
import http from "node:http";
import { fileURLToPath } from "node:url";
import httpProxy from "http-proxy";
import next from "next";

const dev = process.argv.includes("--dev");
const port = Number(process.env.PORT ?? 3000);
const hostname = process.env.HOSTNAME ?? "127.0.0.1";
const apiUrl = process.env.CEX_API_URL ?? "http://127.0.0.1:18200";
const gatewayUrl = process.env.CEX_GATEWAY_URL ?? "http://127.0.0.1:18300";

const API_PATH = /^\/(api|cex|ws-api)(\/|\?|$)/;
const GATEWAY_PATH = /^\/(ws|stream)(\/|\?|$)/;

/** The exchange service a path belongs to, or null for the UI's own pages. */
function targetOf(url = "/") {
  if (API_PATH.test(url)) return apiUrl;
  if (GATEWAY_PATH.test(url)) return gatewayUrl;
  return null;
}

// The API and the gateway trust X-Forwarded-For from loopback (this server), so a header the
// browser sent itself must not pass through: it would let anyone pick the IP address their
// per-IP limits count. Only the proxies listed in CEX_WEB_FORWARDED_ALLOW_IPS (e.g. an
// Ingress in front of this server) may have their forwarding headers kept; xfwd then adds
// the peer's address.
const trustedProxies = new Set(
  (process.env.CEX_WEB_FORWARDED_ALLOW_IPS ?? "").split(",").map((ip) => ip.trim()).filter(Boolean),
);
const FORWARDING = ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip"];

function dropUntrustedForwarding(req) {
  const peer = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
  if (trustedProxies.has(peer) || trustedProxies.has("*")) return;
  for (const name of FORWARDING) delete req.headers[name];
}

const proxy = httpProxy.createProxyServer({ xfwd: true, changeOrigin: false, ws: true });
proxy.on("error", (error, _req, res) => {
  if (res instanceof http.ServerResponse) {
    if (!res.headersSent) {
      res.writeHead(502, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ code: -1001, msg: "The exchange is unreachable; try again shortly." }));
    } else res.destroy();
  } else res?.destroy?.();
  console.error(`proxy: ${error.message}`);
});

const app = next({ dev, dir: fileURLToPath(new URL(".", import.meta.url)), hostname, port });
const handle = app.getRequestHandler();
await app.prepare();
const upgradeNext = dev ? app.getUpgradeHandler() : null; // hot reload in dev

const server = http.createServer((req, res) => {
  const target = targetOf(req.url);
  if (target) {
    dropUntrustedForwarding(req);
    proxy.web(req, res, { target });
  }
  else void handle(req, res);
});
server.on("upgrade", (req, socket, head) => {
  const target = targetOf(req.url);
  if (target) {
    dropUntrustedForwarding(req);
    proxy.ws(req, socket, head, { target });
  }
  else if (upgradeNext) void upgradeNext(req, socket, head);
  else socket.destroy();
});
server.listen(port, hostname, () => {
  console.log(`cex web on http://${hostname}:${port} (api ${apiUrl}, gateway ${gatewayUrl}${dev ? ", dev" : ""})`);
});
