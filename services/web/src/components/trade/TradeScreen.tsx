"use client";
import { useMarket } from "@/lib/markets";

/** The trading screen's panels (filled in by the following commits). */
export function TradeScreen({ symbol }: { symbol: string }) {
  const { market, isLoading } = useMarket(symbol);
  if (isLoading) return <p className="text-muted">Loading {symbol}…</p>;
  if (!market) return <p role="alert">No market {symbol}.</p>;
  return (
    <h1 className="text-lg font-semibold">
      {market.baseAsset}/{market.quoteAsset}
    </h1>
  );
}
