"use client";
import Link from "next/link";
import type { ReactNode } from "react";
import { errorMessage } from "@/lib/api";
import { formatDecimal, isZero } from "@/lib/decimal";
import type { Market } from "@/lib/markets";
import { type Order, useCancelAll, useCancelOrder, useOpenOrders, useOrderHistory, useTradeHistory } from "@/lib/trading";
import { Panel } from "./Panel";

const when = new Intl.DateTimeFormat(undefined, {
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

const TYPE_LABEL: Record<string, string> = {
  LIMIT: "Limit",
  LIMIT_MAKER: "Post-only",
  MARKET: "Market",
  STOP_LOSS: "Stop market",
  STOP_LOSS_LIMIT: "Stop-limit",
  TAKE_PROFIT_LIMIT: "Take-profit limit",
};

function SignInPrompt({ market, what }: { market: Market; what: string }) {
  return (
    <p className="p-3 text-sm text-muted">
      <Link prefetch={false} href={`/login?next=${encodeURIComponent(`/trade/${market.symbol}`)}`} className="text-accent underline">
        Sign in
      </Link>{" "}
      to see your {what}.
    </p>
  );
}

function Th({ children, right }: { children: ReactNode; right?: boolean }) {
  return (
    <th scope="col" className={`whitespace-nowrap px-3 py-1 font-normal ${right ? "text-right" : "text-left"}`}>
      {children}
    </th>
  );
}

function Td({ children, right, className = "" }: { children: ReactNode; right?: boolean; className?: string }) {
  return <td className={`whitespace-nowrap px-3 py-1 ${right ? "text-right" : ""} ${className}`}>{children}</td>;
}

function SideCell({ side }: { side: "BUY" | "SELL" }) {
  return <Td className={side === "BUY" ? "text-buy" : "text-sell"}>{side === "BUY" ? "Buy" : "Sell"}</Td>;
}

function Table({ caption, head, children }: { caption: string; head: ReactNode; children: ReactNode }) {
  return (
    <div className="relative max-h-72 overflow-auto">
      <table className="tabular w-full text-xs">
        <caption className="sr-only">{caption}</caption>
        <thead className="sticky top-0 bg-panel text-muted">
          <tr>{head}</tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

function price(order: Order, market: Market): string {
  return order.type === "MARKET" || isZero(order.price) ? "Market" : formatDecimal(order.price, market.priceDecimals);
}

/** The user's open orders of this market: cancel one, or all. */
export function OpenOrders({ market, signedIn }: { market: Market; signedIn: boolean }) {
  const orders = useOpenOrders(market.symbol, signedIn);
  const cancel = useCancelOrder(market.symbol);
  const cancelAll = useCancelAll(market.symbol);
  const count = orders.data?.length ?? 0;
  const failure = cancel.error ?? cancelAll.error;
  const actions = signedIn ? (
    <button
      type="button"
      onClick={() => cancelAll.mutate()}
      disabled={count === 0 || cancelAll.isPending}
      className="rounded border border-line px-2 py-0.5 text-xs hover:bg-panel-2 focus-visible:outline-2 focus-visible:outline-accent disabled:opacity-50"
    >
      Cancel all
    </button>
  ) : null;
  return (
    <Panel title="Open orders" actions={actions}>
      {!signedIn ? (
        <SignInPrompt market={market} what="open orders" />
      ) : (
        <>
          {failure && (
            <p role="alert" className="mx-3 mt-2 rounded bg-sell/15 p-2 text-xs text-sell">
              {errorMessage(failure)}
            </p>
          )}
          <Table
            caption={`Open orders of ${market.symbol}`}
            head={
              <>
                <Th>Time</Th>
                <Th>Side</Th>
                <Th>Type</Th>
                <Th right>Price</Th>
                <Th right>Stop</Th>
                <Th right>Amount</Th>
                <Th right>Filled</Th>
                <Th right>
                  <span className="sr-only">Action</span>
                </Th>
              </>
            }
          >
            {(orders.data ?? []).map((o) => (
              <tr key={o.orderId} className="border-t border-line">
                <Td>{when.format(o.time)}</Td>
                <SideCell side={o.side} />
                <Td>{TYPE_LABEL[o.type] ?? o.type}</Td>
                <Td right>{price(o, market)}</Td>
                <Td right>{o.stopPrice && !isZero(o.stopPrice) ? formatDecimal(o.stopPrice, market.priceDecimals) : "—"}</Td>
                <Td right>{formatDecimal(o.origQty, market.qtyDecimals)}</Td>
                <Td right>{formatDecimal(o.executedQty, market.qtyDecimals)}</Td>
                <Td right>
                  <button
                    type="button"
                    onClick={() => cancel.mutate(o.orderId)}
                    disabled={cancel.isPending && cancel.variables === o.orderId}
                    aria-describedby={`order-${o.orderId}`}
                    className="rounded px-1 text-accent hover:underline focus-visible:outline-2 focus-visible:outline-accent"
                  >
                    Cancel
                  </button>
                  <span id={`order-${o.orderId}`} className="sr-only">
                    {o.side === "BUY" ? "buy" : "sell"} {o.origQty} at {o.price}
                  </span>
                </Td>
              </tr>
            ))}
          </Table>
          {orders.isSuccess && count === 0 && <p className="p-3 text-sm text-muted">No open orders.</p>}
        </>
      )}
    </Panel>
  );
}

/** The user's latest orders of this market, whatever became of them. */
export function OrderHistory({ market, signedIn }: { market: Market; signedIn: boolean }) {
  const orders = useOrderHistory(market.symbol, signedIn);
  return (
    <Panel title="Order history">
      {!signedIn ? (
        <SignInPrompt market={market} what="orders" />
      ) : (
        <>
          <Table
            caption={`Order history of ${market.symbol}`}
            head={
              <>
                <Th>Time</Th>
                <Th>Side</Th>
                <Th>Type</Th>
                <Th right>Price</Th>
                <Th right>Amount</Th>
                <Th right>Filled</Th>
                <Th>Status</Th>
              </>
            }
          >
            {(orders.data ?? []).map((o) => (
              <tr key={o.orderId} className="border-t border-line">
                <Td>{when.format(o.time)}</Td>
                <SideCell side={o.side} />
                <Td>{TYPE_LABEL[o.type] ?? o.type}</Td>
                <Td right>{price(o, market)}</Td>
                <Td right>{formatDecimal(o.origQty, market.qtyDecimals)}</Td>
                <Td right>{formatDecimal(o.executedQty, market.qtyDecimals)}</Td>
                <Td>{o.status.replace("_", " ").toLowerCase()}</Td>
              </tr>
            ))}
          </Table>
          {orders.isSuccess && orders.data.length === 0 && <p className="p-3 text-sm text-muted">No orders yet.</p>}
        </>
      )}
    </Panel>
  );
}

/** The user's latest fills in this market. */
export function TradeHistory({ market, signedIn }: { market: Market; signedIn: boolean }) {
  const trades = useTradeHistory(market.symbol, signedIn);
  return (
    <Panel title="Trade history">
      {!signedIn ? (
        <SignInPrompt market={market} what="trades" />
      ) : (
        <>
          <Table
            caption={`Trade history of ${market.symbol}`}
            head={
              <>
                <Th>Time</Th>
                <Th>Side</Th>
                <Th right>Price</Th>
                <Th right>Amount</Th>
                <Th right>Total</Th>
                <Th right>Fee</Th>
                <Th>Role</Th>
              </>
            }
          >
            {(trades.data ?? []).map((t) => (
              <tr key={t.id} className="border-t border-line">
                <Td>{when.format(t.time)}</Td>
                <SideCell side={t.isBuyer ? "BUY" : "SELL"} />
                <Td right>{formatDecimal(t.price, market.priceDecimals)}</Td>
                <Td right>{formatDecimal(t.qty, market.qtyDecimals)}</Td>
                <Td right>{formatDecimal(t.quoteQty, market.priceDecimals + market.qtyDecimals, { trim: true })}</Td>
                <Td right>
                  {formatDecimal(t.commission, 8, { trim: true })} {t.commissionAsset}
                </Td>
                <Td>{t.isMaker ? "Maker" : "Taker"}</Td>
              </tr>
            ))}
          </Table>
          {trades.isSuccess && trades.data.length === 0 && <p className="p-3 text-sm text-muted">No trades yet.</p>}
        </>
      )}
    </Panel>
  );
}
