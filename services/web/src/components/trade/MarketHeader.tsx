"use client";
import { formatByStep, formatDecimal } from "@/lib/decimal";
import type { Market } from "@/lib/markets";
import { useTicker } from "@/lib/marketData";

/** The market's name and 24 h figures, live from `@ticker`. */
export function MarketHeader({ market }: { market: Market }) {
  const ticker = useTicker(market.symbol).data;
  const tick = market.price.tickSize;
  const up = ticker ? !ticker.priceChange.startsWith("-") : true;
  const stats: Array<[string, string]> = ticker
    ? [
        ["24h change", `${formatByStep(ticker.priceChange, tick)} (${formatDecimal(ticker.priceChangePercent, 2)}%)`],
        ["24h high", formatByStep(ticker.highPrice, tick)],
        ["24h low", formatByStep(ticker.lowPrice, tick)],
        [`24h volume (${market.baseAsset})`, formatDecimal(ticker.volume, market.qtyDecimals)],
        [`24h volume (${market.quoteAsset})`, formatDecimal(ticker.quoteVolume, 2)],
      ]
    : [];
  return (
    <div className="flex flex-wrap items-center gap-x-6 gap-y-2 rounded border border-line bg-panel px-3 py-2">
      <h1 className="text-lg font-semibold">
        {market.baseAsset}/{market.quoteAsset}
      </h1>
      <p className={`tabular text-lg font-semibold ${up ? "text-buy" : "text-sell"}`}>
        <span className="sr-only">Last price </span>
        {ticker ? formatByStep(ticker.lastPrice, tick) : "—"}
      </p>
      <dl className="flex flex-wrap gap-x-6 gap-y-1 text-xs">
        {stats.map(([label, value]) => (
          <div key={label}>
            <dt className="text-muted">{label}</dt>
            <dd className={`tabular ${label === "24h change" ? (up ? "text-buy" : "text-sell") : ""}`}>{value}</dd>
          </div>
        ))}
      </dl>
      {market.status !== "TRADING" && (
        <p role="status" className="rounded bg-sell/20 px-2 py-1 text-xs text-sell">
          Trading is {market.status.toLowerCase()}
        </p>
      )}
    </div>
  );
}
