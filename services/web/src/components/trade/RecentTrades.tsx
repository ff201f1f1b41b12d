"use client";
import { formatDecimal } from "@/lib/decimal";
import type { Market } from "@/lib/markets";
import { useRecentTrades } from "@/lib/marketData";
import { Panel } from "./Panel";

const time = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

/** The market's latest trades, live from `@trade`: green when the taker bought. */
export function RecentTrades({ market }: { market: Market }) {
  const trades = useRecentTrades(market.symbol);
  return (
    <Panel title="Recent trades">
      <div className="max-h-80 overflow-y-auto">
        <table className="tabular w-full table-fixed text-xs">
          <thead className="sticky top-0 bg-panel text-muted">
            <tr>
              <th scope="col" className="px-3 py-1 text-left font-normal">
                Price ({market.quoteAsset})
              </th>
              <th scope="col" className="px-3 py-1 text-right font-normal">
                Amount ({market.baseAsset})
              </th>
              <th scope="col" className="px-3 py-1 text-right font-normal">
                Time
              </th>
            </tr>
          </thead>
          <tbody>
            {(trades.data ?? []).map((t) => (
              <tr key={t.id}>
                <td className={`px-3 py-0.5 ${t.isBuyerMaker ? "text-sell" : "text-buy"}`}>
                  {formatDecimal(t.price, market.priceDecimals)}
                  <span className="sr-only">{t.isBuyerMaker ? " sell" : " buy"}</span>
                </td>
                <td className="px-3 py-0.5 text-right">{formatDecimal(t.qty, market.qtyDecimals)}</td>
                <td className="px-3 py-0.5 text-right text-muted">{time.format(t.time)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {trades.data?.length === 0 && <p className="p-3 text-sm text-muted">No trades yet.</p>}
      </div>
    </Panel>
  );
}
