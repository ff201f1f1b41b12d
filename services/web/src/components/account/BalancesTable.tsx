"use client";
import { useMemo, useState } from "react";
import { assetPrecisions, balanceRows } from "@/lib/accountForms";
import { errorMessage } from "@/lib/api";
import { useMarkets } from "@/lib/markets";
import { useAccount } from "@/lib/trading";
import { Panel } from "./ui";

/** Free, locked and total per asset; live through the user data stream (W1's `useAccount`). */
export function BalancesTable() {
  const account = useAccount(true);
  const markets = useMarkets();
  const [hideZero, setHideZero] = useState(false);
  const precisions = useMemo(() => assetPrecisions(markets.data ?? []), [markets.data]);
  const rows = useMemo(
    () => balanceRows(account.data?.balances ?? [], precisions, !hideZero),
    [account.data, precisions, hideZero],
  );
  return (
    <Panel
      title="Balances"
      actions={
        <label className="flex items-center gap-2 text-sm text-muted">
          <input type="checkbox" checked={hideZero} onChange={(e) => setHideZero(e.target.checked)} className="accent-accent" />
          Hide zero balances
        </label>
      }
    >
      {account.isPending ? (
        <p role="status" className="text-sm text-muted">
          Loading balances…
        </p>
      ) : account.isError ? (
        <p role="alert" className="text-sm text-sell">
          {errorMessage(account.error)}
        </p>
      ) : rows.length === 0 ? (
        <p className="text-sm text-muted">No funds yet. Deposit some to start trading.</p>
      ) : (
        <div className="overflow-x-auto">
          <table className="tabular w-full text-sm">
            <caption className="sr-only">Your balances per asset (updated live)</caption>
            <thead className="text-left text-xs text-muted">
              <tr>
                <th scope="col" className="py-1.5 pr-3 font-normal">
                  Asset
                </th>
                <th scope="col" className="py-1.5 pr-3 text-right font-normal">
                  Free
                </th>
                <th scope="col" className="py-1.5 pr-3 text-right font-normal">
                  Locked
                </th>
                <th scope="col" className="py-1.5 text-right font-normal">
                  Total
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <tr key={row.asset} className="border-t border-line">
                  <th scope="row" className="py-1.5 pr-3 text-left font-medium">
                    {row.asset}
                  </th>
                  <td className="py-1.5 pr-3 text-right">{row.free}</td>
                  <td className="py-1.5 pr-3 text-right text-muted">{row.locked}</td>
                  <td className="py-1.5 text-right">{row.total}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Panel>
  );
}
