"use client";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useId, useMemo, useState } from "react";
import { errorMessage } from "@/lib/api";
import { change24h, type Direction, filterMarkets, formatPrice, formatVolume, lastPriceOf } from "@/lib/marketList";
import { type Market, useMarkets } from "@/lib/markets";
import { useAllTickers } from "@/lib/tickers";

const CHANGE_CLASS: Record<Direction, string> = { up: "text-buy", down: "text-sell", flat: "text-muted" };
const CHANGE_ARROW: Record<Direction, string> = { up: "▲", down: "▼", flat: "" };

function ChangeCell({ open, last }: { open?: string; last?: string }) {
  if (open === undefined || last === undefined) return <span className="text-muted">—</span>;
  const change = change24h(open, last);
  return (
    <span className={CHANGE_CLASS[change.direction]}>
      <span aria-hidden className="mr-1 text-[0.65rem]">
        {CHANGE_ARROW[change.direction]}
      </span>
      {change.percentText}
    </span>
  );
}

function MarketRow({ market, ticker }: { market: Market; ticker?: { lastPrice: string; openPrice: string; volume: string; quoteVolume: string } }) {
  const router = useRouter();
  const href = `/trade/${market.symbol}`;
  const halted = market.status !== "TRADING";
  return (
    // The link is the keyboard and screen-reader way in; the whole row is a mouse target too.
    <tr className="cursor-pointer border-t border-line hover:bg-panel-2" onClick={() => router.push(href)}>
      <th scope="row" className="py-2 pr-3 text-left font-medium">
        <Link href={href} className="rounded hover:text-accent focus-visible:outline-2 focus-visible:outline-accent" onClick={(e) => e.stopPropagation()}>
          {market.baseAsset}
          <span className="text-muted">/{market.quoteAsset}</span>
        </Link>
        {halted && <span className="ml-2 rounded bg-panel-2 px-1 text-xs text-muted">{market.status.toLowerCase()}</span>}
      </th>
      <td className="py-2 pr-3 text-right">{formatPrice(lastPriceOf(ticker), market.price.tickSize)}</td>
      <td className="py-2 pr-3 text-right">
        <ChangeCell open={ticker?.openPrice} last={ticker?.lastPrice} />
      </td>
      <td className="py-2 pr-3 text-right">
        {formatVolume(ticker?.volume, market.lot.stepSize)} <span className="text-xs text-muted">{market.baseAsset}</span>
      </td>
      <td className="hidden py-2 text-right md:table-cell">
        {formatPrice(ticker?.quoteVolume, market.price.tickSize)} <span className="text-xs text-muted">{market.quoteAsset}</span>
      </td>
    </tr>
  );
}

/** Every market with its live last price, 24 h change and volume; a search; a link to trade each. */
export function MarketsTable() {
  const markets = useMarkets();
  const tickers = useAllTickers();
  const [query, setQuery] = useState("");
  const searchId = useId();
  const headingId = useId();
  const shown = useMemo(() => filterMarkets(markets.data ?? [], query), [markets.data, query]);
  const total = markets.data?.length ?? 0;

  return (
    <section aria-labelledby={headingId} className="rounded border border-line bg-panel p-3 sm:p-4">
      <div className="mb-3 flex flex-wrap items-end justify-between gap-3">
        <h1 id={headingId} className="text-lg font-semibold">
          Markets
        </h1>
        <div className="flex w-full flex-col gap-1 sm:w-64">
          <label htmlFor={searchId} className="text-sm text-muted">
            Search markets
          </label>
          <input
            id={searchId}
            type="search"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            placeholder="BTC, ETH/USDT…"
            autoComplete="off"
            spellCheck={false}
            className="rounded border border-line bg-panel-2 px-2 py-1.5 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-accent"
          />
        </div>
      </div>
      {markets.isPending ? (
        <p role="status" className="text-sm text-muted">
          Loading markets…
        </p>
      ) : markets.isError ? (
        <p role="alert" className="text-sm text-sell">
          {errorMessage(markets.error)}
        </p>
      ) : (
        <>
          <p role="status" className="sr-only">
            {query.trim() ? `${shown.length} of ${total} markets match.` : ""}
          </p>
          {tickers.isError && (
            <p role="alert" className="mb-2 text-sm text-sell">
              Prices unavailable: {errorMessage(tickers.error)}
            </p>
          )}
          {shown.length === 0 ? (
            <p className="text-sm text-muted">No market matches “{query.trim()}”.</p>
          ) : (
            <div className="overflow-x-auto">
              <table className="tabular w-full text-sm">
                <caption className="sr-only">Markets with their last price, 24 hour change and 24 hour volume (updated live)</caption>
                <thead className="text-left text-xs text-muted">
                  <tr>
                    <th scope="col" className="py-1.5 pr-3 font-normal">
                      Market
                    </th>
                    <th scope="col" className="py-1.5 pr-3 text-right font-normal">
                      Last price
                    </th>
                    <th scope="col" className="py-1.5 pr-3 text-right font-normal">
                      24 h change
                    </th>
                    <th scope="col" className="py-1.5 pr-3 text-right font-normal">
                      24 h volume
                    </th>
                    <th scope="col" className="hidden py-1.5 text-right font-normal md:table-cell">
                      24 h turnover
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map((market) => (
                    <MarketRow key={market.symbol} market={market} ticker={tickers.data?.[market.symbol]} />
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}
