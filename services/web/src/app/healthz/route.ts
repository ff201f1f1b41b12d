/** The web server's liveness and readiness (the chart's probes, `make up`'s wait): a 200 as
 * soon as it serves requests. It asks nothing of the exchange, whose own probes say more. */
export const dynamic = "force-static";

export function GET(): Response {
  return new Response("ok\n", { headers: { "Content-Type": "text/plain; charset=utf-8" } });
}
