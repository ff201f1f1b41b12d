"use client";
import {
  CandlestickSeries,
  ColorType,
  HistogramSeries,
  type IChartApi,
  type ISeriesApi,
  type UTCTimestamp,
  createChart,
} from "lightweight-charts";
import { useEffect, useRef, useState } from "react";
import { toChartNumber } from "@/lib/decimal";
import type { Market } from "@/lib/markets";
import { CHART_INTERVALS, type Candle, type ChartInterval, candleOfEvent, streamSymbol, useKlines } from "@/lib/marketData";
import { useStream } from "@/lib/stream";
import { Panel } from "./Panel";

const UP = "#2ebd85";
const DOWN = "#f6465d";

function bar(c: Candle) {
  const time = (c.openTime / 1000) as UTCTimestamp;
  return {
    candle: { time, open: toChartNumber(c.open), high: toChartNumber(c.high), low: toChartNumber(c.low), close: toChartNumber(c.close) },
    volume: { time, value: toChartNumber(c.volume), color: toChartNumber(c.close) >= toChartNumber(c.open) ? `${UP}80` : `${DOWN}80` },
  };
}

/** Candles with volume (lightweight-charts), REST history then `@kline_<interval>` live. */
export function PriceChart({ market }: { market: Market }) {
  const [interval, setChartInterval] = useState<ChartInterval>("1m");
  const container = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const candles = useRef<ISeriesApi<"Candlestick"> | null>(null);
  const volumes = useRef<ISeriesApi<"Histogram"> | null>(null);
  const klines = useKlines(market.symbol, interval);

  useEffect(() => {
    if (!container.current) return;
    const created = createChart(container.current, {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: "#161a1e" }, textColor: "#a3abb7" },
      grid: { vertLines: { color: "#2b3139" }, horzLines: { color: "#2b3139" } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#2b3139" },
      rightPriceScale: { borderColor: "#2b3139" },
    });
    const minMove = toChartNumber(market.price.tickSize) || 0.01;
    candles.current = created.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
      borderVisible: false,
      priceFormat: { type: "price", precision: market.priceDecimals, minMove },
    });
    volumes.current = created.addSeries(HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "volume" });
    volumes.current.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    chart.current = created;
    return () => {
      created.remove();
      chart.current = candles.current = volumes.current = null;
    };
  }, [market.price.tickSize, market.priceDecimals]);

  useEffect(() => {
    if (!klines.data || !candles.current || !volumes.current) return;
    const bars = klines.data.map(bar);
    candles.current.setData(bars.map((b) => b.candle));
    volumes.current.setData(bars.map((b) => b.volume));
    chart.current?.timeScale().scrollToRealTime();
  }, [klines.data]);

  useStream(
    `${streamSymbol(market.symbol)}@kline_${interval}`,
    (data) => {
      const candle = candleOfEvent(data);
      if (!candle || !candles.current || !volumes.current) return;
      const b = bar(candle);
      try {
        candles.current.update(b.candle);
        volumes.current.update(b.volume);
      } catch {
        // An update older than the last bar (history still loading): the REST data wins.
      }
    },
    () => void klines.refetch(),
  );

  const switcher = (
    <div role="group" aria-label="Chart interval" className="flex gap-0.5 text-xs">
      {CHART_INTERVALS.map((i) => (
        <button
          key={i}
          type="button"
          aria-pressed={i === interval}
          onClick={() => setChartInterval(i)}
          className={`rounded px-1.5 py-0.5 focus-visible:outline-2 focus-visible:outline-accent ${i === interval ? "bg-panel-2 text-accent" : "text-muted hover:text-fg"}`}
        >
          {i}
        </button>
      ))}
    </div>
  );

  return (
    <Panel title="Price chart" actions={switcher}>
      <div ref={container} className="h-72 w-full lg:h-96 xl:h-[420px]" role="img" aria-label={`${market.symbol} candlestick chart, ${interval} interval, with volume`} />
    </Panel>
  );
}
