"use client";
import { useRouter } from "next/navigation";
import { useEffect } from "react";
import { useMarkets } from "@/lib/markets";

/** `/trade` opens the first market's trading screen. */
export default function TradeIndex() {
  const router = useRouter();
  const markets = useMarkets();
  const first = markets.data?.find((m) => m.status === "TRADING") ?? markets.data?.[0];
  useEffect(() => {
    if (first) router.replace(`/trade/${first.symbol}`);
  }, [first, router]);
  return <p className="text-muted">{markets.data?.length === 0 ? "No markets yet." : "Opening the first market…"}</p>;
}
