"use client";
/**
 * Every market's 24 h ticker for the markets list: seeded from `GET /api/v3/ticker/24hr`
 * and kept live by the gateway's `!miniTicker@arr` (only the tickers that changed), whose
 * entries are written into the same query cache. After a reconnect the REST answer is read
 * again, since changes pushed while the socket was down are lost.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { apiGet } from "./api";
import { applyMiniTickers, mergeNewer, type RestTicker, type TickerMap, tickersFromRest } from "./marketList";
import { useStream } from "./stream";

/** Query keys of the markets list. */
export const tickerKeys = {
  all24hr: ["tickers", "24hr"] as const,
};

/** Live 24 h tickers of every market, by symbol. */
export function useAllTickers() {
  const client = useQueryClient();
  const query = useQuery({
    queryKey: tickerKeys.all24hr,
    queryFn: async () => {
      const rows = await apiGet<RestTicker[]>("/api/v3/ticker/24hr", { type: "MINI" });
      return mergeNewer(client.getQueryData<TickerMap>(tickerKeys.all24hr), tickersFromRest(rows));
    },
    // The stream keeps it fresh (it also pushes a quiet market whose 24 h open moved); a
    // slow reload is only a safety net (all symbols cost REST weight 80).
    staleTime: Infinity,
    refetchInterval: 300_000,
  });
  useStream(
    "!miniTicker@arr",
    (payload) => client.setQueryData<TickerMap>(tickerKeys.all24hr, (current) => applyMiniTickers(current ?? {}, payload)),
    () => {
      if (client.getQueryData(tickerKeys.all24hr)) void client.invalidateQueries({ queryKey: tickerKeys.all24hr });
    },
  );
  return query;
}
