"use client";
import { useMemo, useState } from "react";
import { type SortedBook, cumulative, groupLevels, groupingSteps } from "@/lib/book";
import { cmp, decimalsOf, formatByStep, formatDecimal, sub } from "@/lib/decimal";
import type { Market } from "@/lib/markets";
import { Panel } from "./Panel";

const ROWS = 15;

/** The order book with spread, price grouping and click-a-level-to-fill the order form. */
export function OrderBook({
  market,
  book,
  onPickPrice,
}: {
  market: Market;
  book: SortedBook | null;
  onPickPrice: (price: string) => void;
}) {
  const steps = groupingSteps(market.price.tickSize);
  const [step, setStep] = useState(steps[0] ?? market.price.tickSize);
  const decimals = Math.min(market.priceDecimals, decimalsOf(step));

  const view = useMemo(() => {
    if (!book) return null;
    const bids = groupLevels(book.bids, step, "bids", decimals, ROWS);
    const asks = groupLevels(book.asks, step, "asks", decimals, ROWS);
    return { bids: cumulative(bids), asks: cumulative(asks) };
  }, [book, step, decimals]);

  const maxTotal = view
    ? Math.max(Number(view.bids.at(-1)?.total ?? 0), Number(view.asks.at(-1)?.total ?? 0)) // bar widths only
    : 0;
  const bestBid = view?.bids[0]?.price;
  const bestAsk = view?.asks[0]?.price;

  const grouping = (
    <label className="flex items-center gap-1 text-xs text-muted">
      Price grouping
      <select
        value={step}
        onChange={(e) => setStep(e.target.value)}
        className="rounded border border-line bg-panel-2 px-1 py-0.5 text-fg"
      >
        {steps.map((s) => (
          <option key={s} value={s}>
            {s}
          </option>
        ))}
      </select>
    </label>
  );

  return (
    <Panel title="Order book" actions={grouping}>
      {!view ? (
        <p className="p-3 text-sm text-muted" role="status">
          Loading the order book…
        </p>
      ) : (
        <table className="tabular w-full table-fixed text-xs">
          <caption className="sr-only">
            Asks then bids of {market.symbol}; choose a price to use it in the order form
          </caption>
          <thead className="text-muted">
            <tr>
              <th scope="col" className="px-3 py-1 text-left font-normal">
                Price ({market.quoteAsset})
              </th>
              <th scope="col" className="px-3 py-1 text-right font-normal">
                Amount ({market.baseAsset})
              </th>
              <th scope="col" className="px-3 py-1 text-right font-normal">
                Total
              </th>
            </tr>
          </thead>
          <tbody aria-label="Asks">
            {[...view.asks].reverse().map((level) => (
              <BookRow key={level.price} side="ask" level={level} market={market} maxTotal={maxTotal} decimals={decimals} onPick={onPickPrice} />
            ))}
          </tbody>
          <tbody aria-label="Spread">
            <tr className="border-y border-line">
              <td colSpan={3} className="px-3 py-1.5 text-muted">
                {bestBid && bestAsk && cmp(bestAsk, bestBid) > 0 ? (
                  <>Spread {formatByStep(sub(bestAsk, bestBid), market.price.tickSize)}</>
                ) : (
                  <>Spread —</>
                )}
              </td>
            </tr>
          </tbody>
          <tbody aria-label="Bids">
            {view.bids.map((level) => (
              <BookRow key={level.price} side="bid" level={level} market={market} maxTotal={maxTotal} decimals={decimals} onPick={onPickPrice} />
            ))}
          </tbody>
        </table>
      )}
    </Panel>
  );
}

function BookRow({
  side,
  level,
  market,
  maxTotal,
  decimals,
  onPick,
}: {
  side: "bid" | "ask";
  level: { price: string; quantity: string; total: string };
  market: Market;
  maxTotal: number;
  decimals: number;
  onPick: (price: string) => void;
}) {
  const width = maxTotal > 0 ? (Number(level.total) / maxTotal) * 100 : 0;
  const colour = side === "bid" ? "text-buy" : "text-sell";
  const bar = side === "bid" ? "rgba(46,189,133,0.15)" : "rgba(246,70,93,0.15)";
  return (
    <tr
      className="hover:bg-panel-2"
      style={{ background: `linear-gradient(to left, ${bar} ${width}%, transparent ${width}%)` }}
    >
      <td className="px-3 py-0.5">
        <button
          type="button"
          onClick={() => onPick(level.price)}
          className={`${colour} rounded hover:underline focus-visible:outline-2 focus-visible:outline-accent`}
          aria-label={`${side === "bid" ? "Bid" : "Ask"} ${formatDecimal(level.price, decimals, { group: false })}: use this price`}
        >
          {formatDecimal(level.price, decimals)}
        </button>
      </td>
      <td className="px-3 py-0.5 text-right">{formatDecimal(level.quantity, market.qtyDecimals)}</td>
      <td className="px-3 py-0.5 text-right text-muted">{formatDecimal(level.total, market.qtyDecimals)}</td>
    </tr>
  );
}

