"use client";
import dynamic from "next/dynamic";
import Link from "next/link";
import { memo, useCallback, useMemo, useState } from "react";
import { type Book, sortBook } from "@/lib/book";
import { type Market, useMarket } from "@/lib/markets";
import { useOrderBook, useTicker } from "@/lib/marketData";
import { useSession } from "@/lib/session";
import * as balances from "./Balances";
import { DepthChart } from "./DepthChart";
import * as header from "./MarketHeader";
import { OrderBook } from "./OrderBook";
import * as form from "./OrderForm";
import type { PickedPrice } from "./OrderForm";
import * as trades from "./RecentTrades";
import * as user from "./UserOrders";

// The book changes every 100 ms and re-renders this screen; the panels that do not show it
// skip those renders (their props stay the same).
const Balances = memo(balances.Balances);
const MarketHeader = memo(header.MarketHeader);
const OrderForm = memo(form.OrderForm);
const RecentTrades = memo(trades.RecentTrades);
const OpenOrders = memo(user.OpenOrders);
const OrderHistory = memo(user.OrderHistory);
const TradeHistory = memo(user.TradeHistory);

// The chart library is the page's largest piece: it loads after the book, trades and form.
const PriceChart = memo(dynamic(() => import("./PriceChart").then((m) => m.PriceChart), {
  ssr: false,
  loading: () => <div className="h-[20.5rem] rounded border border-line bg-panel lg:h-[26.5rem] xl:h-[28.5rem]" aria-hidden />,
}));

/** The trading screen of one market: the panels are placed by the `trade-grid` areas
 * (globals.css), stacked on a phone with the order form right after the chart. */
export function TradeScreen({ symbol }: { symbol: string }) {
  const { market, isLoading, isError } = useMarket(symbol);
  // Started before the market's rules arrive: the book is what a trader waits for.
  const book = useOrderBook(symbol);
  if (isLoading) return <p className="text-muted">Loading {symbol}…</p>;
  if (isError) return <p role="alert">The markets could not be loaded; try again shortly.</p>;
  if (!market)
    return (
      <p role="alert">
        There is no market {symbol}.{" "}
        <Link prefetch={false} href="/" className="text-accent underline">
          See all markets
        </Link>
      </p>
    );
  return <Screen key={market.symbol} market={market} book={book} />;
}

function Screen({ market, book }: { market: Market; book: Book | null }) {
  const session = useSession();
  const signedIn = Boolean(session.data);
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
          <OrderForm
            market={market}
            signedIn={signedIn}
            lastPrice={lastPrice}
            bestBid={sorted?.bids[0]?.[0]}
            bestAsk={sorted?.asks[0]?.[0]}
            picked={picked}
          />
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
