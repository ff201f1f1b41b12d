import type { Metadata } from "next";
import { TradeScreen } from "@/components/trade/TradeScreen";

type Props = { params: Promise<{ symbol: string }> };

export async function generateMetadata({ params }: Props): Promise<Metadata> {
  const { symbol } = await params;
  return { title: `Trade ${symbol.toUpperCase()}` };
}

/** The trading screen of one market: everything on it is live client-side. */
export default async function TradePage({ params }: Props) {
  const { symbol } = await params;
  return <TradeScreen symbol={symbol.toUpperCase()} />;
}
