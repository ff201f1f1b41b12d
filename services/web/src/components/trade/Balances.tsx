"use client";
import Link from "next/link";
import { formatDecimal } from "@/lib/decimal";
import type { Market } from "@/lib/markets";
import { balanceOf, useAccount } from "@/lib/trading";
import { Panel } from "./Panel";

/** The user's balances of the pair's two assets, live from the user data stream. */
export function Balances({ market, signedIn }: { market: Market; signedIn: boolean }) {
  const account = useAccount(signedIn);
  const rows = [
    { asset: market.baseAsset, precision: market.baseAssetPrecision },
    { asset: market.quoteAsset, precision: market.quoteAssetPrecision },
  ];
  return (
    <Panel title="Balances">
      {!signedIn ? (
        <p className="p-3 text-sm text-muted">
          <Link prefetch={false} href={`/login?next=${encodeURIComponent(`/trade/${market.symbol}`)}`} className="text-accent underline">
            Sign in
          </Link>{" "}
          to see your balances.
        </p>
      ) : (
        <table className="tabular w-full text-xs">
          <caption className="sr-only">Your {market.baseAsset} and {market.quoteAsset} balances</caption>
          <thead className="text-muted">
            <tr>
              <th scope="col" className="px-3 py-1 text-left font-normal">
                Asset
              </th>
              <th scope="col" className="px-3 py-1 text-right font-normal">
                Available
              </th>
              <th scope="col" className="px-3 py-1 text-right font-normal">
                In orders
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ asset, precision }) => {
              const b = balanceOf(account.data, asset);
              return (
                <tr key={asset} className="border-t border-line">
                  <th scope="row" className="px-3 py-1 text-left font-medium">
                    {asset}
                  </th>
                  <td className="px-3 py-1 text-right">{formatDecimal(b.free, precision, { trim: true })}</td>
                  <td className="px-3 py-1 text-right">{formatDecimal(b.locked, precision, { trim: true })}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </Panel>
  );
}
