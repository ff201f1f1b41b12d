// The JavaScript a page loads first, from a running production server: every
// /_next/static/**.js the page's HTML references (script tags and the preloads in its
// flight data) but the noModule polyfills modern browsers skip, summed raw and gzipped
// (what `next build` printed as "First Load JS" before Next 16 dropped the column).
//
//   node scripts/first-load-js.mjs http://127.0.0.1:3000/trade/BTCUSDT
//
// Prints one JSON object: {"url", "files", "rawBytes", "gzipBytes"}.
import { gzipSync } from "node:zlib";

const url = process.argv[2];
if (!url) {
  console.error("usage: node scripts/first-load-js.mjs <page URL>");
  process.exit(2);
}
const html = await (await fetch(url)).text();
const skipped = new Set([...html.matchAll(/<script[^>]*src="([^"]+)"[^>]*noModule/gi)].map((m) => m[1]));
const referenced = [...html.matchAll(/\/_next\/static\/[^"'\\\s]+?\.js/g)].map((m) => m[0]);
const paths = [...new Set(referenced)].filter((path) => !skipped.has(path));
let rawBytes = 0;
let gzipBytes = 0;
for (const path of paths) {
  const response = await fetch(new URL(path, url));
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  const body = Buffer.from(await response.arrayBuffer());
  rawBytes += body.length;
  gzipBytes += gzipSync(body, { level: 9 }).length;
}
console.log(JSON.stringify({ url, files: paths.length, rawBytes, gzipBytes }));
