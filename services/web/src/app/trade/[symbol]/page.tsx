import type { Metadata } from "next";
import { preload } from "react-dom";
import { TradeScreen } from "@/components/trade/TradeScreen";
import { depthSnapshotUrl } from "@/lib/book";

type Props = { params: Promise<{ symbol: string }> };

export async function generateMetadata({ params }: Props): Promise<Metadata> {
  const { symbol } = await params;
  return { title: `Trade ${symbol.toUpperCase()}` };
}

/** The trading screen of one market: everything on it is live client-side. */
export default async function TradePage({ params }: Props) {
  const { symbol } = await params;
  const upper = symbol.toUpperCase();
  // The browser fetches what the book waits for while the scripts load; the client's own
  // requests for the same URLs then take these answers.
  preload("/api/v3/exchangeInfo", { as: "fetch", crossOrigin: "anonymous" });
  preload(depthSnapshotUrl(upper), { as: "fetch", crossOrigin: "anonymous" });
  return <TradeScreen symbol={upper} />;
}
