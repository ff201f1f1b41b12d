"use client";
import Link from "next/link";
import { useCallback, useMemo, useState } from "react";
import { sortBook } from "@/lib/book";
import { useMarket } from "@/lib/markets";
import { useOrderBook, useTicker } from "@/lib/marketData";
import { useSession } from "@/lib/session";
import { Balances } from "./Balances";
import { DepthChart } from "./DepthChart";
import { MarketHeader } from "./MarketHeader";
import { OrderBook } from "./OrderBook";
import { OrderForm, type PickedPrice } from "./OrderForm";
import { PriceChart } from "./PriceChart";
import { RecentTrades } from "./RecentTrades";
import { OpenOrders, OrderHistory, TradeHistory } from "./UserOrders";

/** The trading screen of one market: the panels are placed by the `trade-grid` areas
 * (globals.css), stacked on a phone with the order form right after the chart. */
export function TradeScreen({ symbol }: { symbol: string }) {
  const { market, isLoading, isError } = useMarket(symbol);
  if (isLoading) return <p className="text-muted">Loading {symbol}…</p>;
  if (isError) return <p role="alert">The markets could not be loaded; try again shortly.</p>;
  if (!market)
    return (
      <p role="alert">
        There is no market {symbol}.{" "}
        <Link href="/" className="text-accent underline">
          See all markets
        </Link>
      </p>
    );
  return <Screen key={market.symbol} market={market} />;
}

function Screen({ market }: { market: NonNullable<ReturnType<typeof useMarket>["market"]> }) {
  const session = useSession();
  const signedIn = Boolean(session.data);
  const book = useOrderBook(market.symbol);
  const sorted = useMemo(() => (book ? sortBook(book) : null), [book]);
  const lastPrice = useTicker(market.symbol).data?.lastPrice;
  const [picked, setPicked] = useState<PickedPrice | null>(null);
  const pick = useCallback((price: string) => setPicked((p) => ({ price, seq: (p?.seq ?? 0) + 1 })), []);

  return (
    <div className="flex flex-col gap-2">
      <MarketHeader market={market} />
      <div className="trade-grid">
        <div style={{ gridArea: "chart" }} className="min-w-0">
          <PriceChart market={market} />
        </div>
        <div style={{ gridArea: "form" }}>
          <OrderForm market={market} signedIn={signedIn} lastPrice={lastPrice} picked={picked} />
        </div>
        <div style={{ gridArea: "balances" }}>
          <Balances market={market} signedIn={signedIn} />
        </div>
        <div style={{ gridArea: "book" }}>
          <OrderBook market={market} book={sorted} onPickPrice={pick} />
        </div>
        <div style={{ gridArea: "trades" }}>
          <RecentTrades market={market} />
        </div>
        <div style={{ gridArea: "depth" }} className="min-w-0">
          <DepthChart market={market} book={sorted} />
        </div>
      </div>
      <OpenOrders market={market} signedIn={signedIn} />
      <div className="grid gap-2 xl:grid-cols-2">
        <OrderHistory market={market} signedIn={signedIn} />
        <TradeHistory market={market} signedIn={signedIn} />
      </div>
    </div>
  );
}
