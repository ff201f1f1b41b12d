"use client";
/**
 * Live public market data of one symbol: REST for the first picture, the gateway stream for
 * everything after, written into the TanStack Query cache (or, for the book, kept by the
 * pure procedure of book.ts). Each stream's `onOpen` (first subscribe and every reconnect)
 * reloads the REST picture, so nothing missed while disconnected stays missing.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { ApiError, apiGet } from "./api";
import { backoffDelay } from "./backoff";
import { type Book, type DepthDiff, type DepthSnapshot, depthSnapshotUrl, emptySync, onDiff, onSnapshot } from "./book";
import { queryKeys } from "./queryKeys";
import { marketStream, useStream } from "./stream";

/** The stream name prefix of a symbol ("BTCUSDT" → "btcusdt"). */
export const streamSymbol = (symbol: string) => symbol.toLowerCase();

/** One public trade. */
export interface PublicTrade {
  id: number;
  price: string;
  qty: string;
  time: number;
  /** True when the buyer was the maker, i.e. the taker sold. */
  isBuyerMaker: boolean;
}

/** The 24 h ticker (REST names). */
export interface Ticker24h {
  symbol: string;
  lastPrice: string;
  priceChange: string;
  priceChangePercent: string;
  highPrice: string;
  lowPrice: string;
  volume: string;
  quoteVolume: string;
  bidPrice: string;
  askPrice: string;
}

/** One candle; prices and volume as decimal strings. */
export interface Candle {
  openTime: number;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
}

/** The kline intervals the chart offers (all are served by the API and the gateway). */
export const CHART_INTERVALS = ["1m", "5m", "15m", "1h", "4h", "1d"] as const;
/** A chart interval. */
export type ChartInterval = (typeof CHART_INTERVALS)[number];

const TRADES_SHOWN = 50;

/**
 * The local order book of `symbol`, live from `@depth@100ms` over a REST snapshot; null
 * until synced. Resyncs by itself on a gap or a reconnect.
 */
export function useOrderBook(symbol: string): Book | null {
  const [book, setBook] = useState<Book | null>(null);
  useEffect(() => {
    let sync = emptySync();
    let fetching = false;
    let attempt = 0;
    let stopped = false;
    let opens = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const retry = (baseMs: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => void fetchSnapshot(), backoffDelay(attempt++, baseMs));
    };
    const fetchSnapshot = async () => {
      if (fetching || stopped) return;
      fetching = true;
      try {
        const snapshot = await apiGet<DepthSnapshot>(depthSnapshotUrl(symbol));
        if (stopped) return;
        const outcome = onSnapshot(sync, snapshot);
        sync = outcome.sync;
        if (outcome.sync.status === "live") {
          attempt = 0;
          setBook(outcome.sync.book);
        }
        if (outcome.resync) retry(200);
      } catch (error) {
        // A refusal (e.g. no such symbol) will not change by asking again.
        if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) return;
        retry(500);
      } finally {
        fetching = false;
      }
    };
    const unsubscribe = marketStream().subscribe(`${streamSymbol(symbol)}@depth@100ms`, {
      onMessage: (data) => {
        const before = sync;
        const outcome = onDiff(before, data as DepthDiff);
        sync = outcome.sync;
        if (outcome.resync) void fetchSnapshot();
        else if (outcome.sync !== before && outcome.sync.status === "live") setBook(outcome.sync.book);
      },
      onOpen: () => {
        // The first snapshot is already on its way (fetched at once, not after the socket
        // opens: the procedure tolerates either order and resyncs on a gap). After a
        // reconnect the stream may have missed diffs: buffer from now on, fetch again.
        if (opens++ === 0) return;
        sync = emptySync();
        void fetchSnapshot();
      },
    });
    void fetchSnapshot();
    return () => {
      stopped = true;
      clearTimeout(timer);
      unsubscribe();
    };
  }, [symbol]);
  return book;
}

/** The latest public trades of `symbol`, newest first, live from `@trade`. */
export function useRecentTrades(symbol: string) {
  const client = useQueryClient();
  const key = queryKeys.market.trades(symbol);
  const query = useQuery({
    queryKey: key,
    queryFn: async () => (await apiGet<PublicTrade[]>("/api/v3/trades", { symbol, limit: TRADES_SHOWN })).reverse(),
    staleTime: Infinity,
  });
  useStream(
    `${streamSymbol(symbol)}@trade`,
    (data) => {
      const t = data as { t: number; p: string; q: string; T: number; m: boolean };
      client.setQueryData<PublicTrade[]>(key, (old) => {
        if (old?.some((x) => x.id === t.t)) return old;
        const trade: PublicTrade = { id: t.t, price: t.p, qty: t.q, time: t.T, isBuyerMaker: t.m };
        return [trade, ...(old ?? [])].slice(0, TRADES_SHOWN);
      });
    },
    () => void client.invalidateQueries({ queryKey: key }),
  );
  return query;
}

/** The 24 h ticker of `symbol`, live from `@ticker`. */
export function useTicker(symbol: string) {
  const client = useQueryClient();
  const key = queryKeys.market.ticker(symbol);
  const query = useQuery({
    queryKey: key,
    queryFn: () => apiGet<Ticker24h>("/api/v3/ticker/24hr", { symbol }),
    staleTime: Infinity,
  });
  useStream(`${streamSymbol(symbol)}@ticker`, (data) => {
    const t = data as Record<string, string>;
    client.setQueryData<Ticker24h>(key, {
      symbol,
      lastPrice: t.c ?? "0",
      priceChange: t.p ?? "0",
      priceChangePercent: t.P ?? "0",
      highPrice: t.h ?? "0",
      lowPrice: t.l ?? "0",
      volume: t.v ?? "0",
      quoteVolume: t.q ?? "0",
      bidPrice: t.b ?? "0",
      askPrice: t.a ?? "0",
    });
  });
  return query;
}

/** Candles of `symbol` at `interval` from REST (the chart follows `@kline_<interval>` itself). */
export function useKlines(symbol: string, interval: ChartInterval) {
  return useQuery({
    queryKey: queryKeys.market.klines(symbol, interval),
    queryFn: async () => {
      const rows = await apiGet<Array<[number, string, string, string, string, string]>>("/api/v3/klines", {
        symbol,
        interval,
        limit: 500,
      });
      return rows.map(([openTime, open, high, low, close, volume]): Candle => ({ openTime, open, high, low, close, volume }));
    },
    staleTime: Infinity,
  });
}

/** A `@kline_<i>` event as a Candle. */
export function candleOfEvent(data: unknown): Candle | null {
  const k = (data as { k?: { t: number; o: string; h: string; l: string; c: string; v: string } }).k;
  return k ? { openTime: k.t, open: k.o, high: k.h, low: k.l, close: k.c, volume: k.v } : null;
}
