import type { Metadata } from "next";
import { MarketsTable } from "@/components/markets/MarketsTable";

export const metadata: Metadata = { title: "Markets" };

/** The home page: every market, live; each one leads to its trading screen. */
export default function MarketsPage() {
  return <MarketsTable />;
}
