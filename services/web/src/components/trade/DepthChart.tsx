"use client";
import { useMemo } from "react";
import { type SortedBook, depthLevels } from "@/lib/book";
import { formatDecimal } from "@/lib/decimal";
import type { Market } from "@/lib/markets";
import { Panel } from "./Panel";

const LEVELS = 100;
const W = 600;
const H = 200;

/** The cumulative depth of both sides as step areas (numbers are for drawing only). */
export function DepthChart({ market, book }: { market: Market; book: SortedBook | null }) {
  const shape = useMemo(() => {
    if (!book) return null;
    const { bids, asks } = depthLevels(book, LEVELS);
    if (bids.length === 0 && asks.length === 0) return { bids: "", asks: "", low: "", high: "" };
    const prices = [...bids, ...asks].map((l) => Number(l.price));
    const lo = Math.min(...prices);
    const hi = Math.max(...prices);
    const top = Math.max(Number(bids.at(-1)?.total ?? 0), Number(asks.at(-1)?.total ?? 0)) || 1;
    const x = (p: string) => (hi === lo ? W / 2 : ((Number(p) - lo) / (hi - lo)) * W);
    const y = (t: string) => H - (Number(t) / top) * (H - 10);
    const path = (levels: typeof bids) => {
      if (levels.length === 0) return "";
      let d = `M ${x(levels[0]!.price)} ${H}`;
      let previous = String(H);
      for (const l of levels) {
        d += ` L ${x(l.price)} ${previous} L ${x(l.price)} ${y(l.total)}`;
        previous = String(y(l.total));
      }
      return `${d} L ${x(levels.at(-1)!.price)} ${H} Z`;
    };
    return {
      bids: path(bids),
      asks: path(asks),
      low: bids.at(-1)?.price ?? asks[0]?.price ?? "",
      high: asks.at(-1)?.price ?? bids[0]?.price ?? "",
    };
  }, [book]);

  return (
    <Panel title="Depth chart">
      {!shape ? (
        <p className="p-3 text-sm text-muted">Loading…</p>
      ) : (
        <figure className="p-2">
          <svg viewBox={`0 0 ${W} ${H}`} className="h-40 w-full" preserveAspectRatio="none" role="img" aria-label={`Cumulative bids and asks of ${market.symbol}`}>
            <path d={shape.bids} fill="rgba(46,189,133,0.25)" stroke="#2ebd85" strokeWidth="1.5" />
            <path d={shape.asks} fill="rgba(246,70,93,0.25)" stroke="#f6465d" strokeWidth="1.5" />
          </svg>
          <figcaption className="tabular flex justify-between text-xs text-muted">
            <span>{shape.low && formatDecimal(shape.low, market.priceDecimals)}</span>
            <span>{shape.high && formatDecimal(shape.high, market.priceDecimals)}</span>
          </figcaption>
        </figure>
      )}
    </Panel>
  );
}
