"use client";
import Link from "next/link";
import { type ReactNode, useId, useState } from "react";
import { type Params, errorMessage } from "@/lib/api";
import { cmp, div, floorToStep, formatDecimal, isDecimalInput, isZero, mul } from "@/lib/decimal";
import { type Market, type OrderDraft, type OrderProblem, type OrderType, validateOrder } from "@/lib/markets";
import { balanceOf, useAccount, useCommission, usePlaceOrder } from "@/lib/trading";
import { Panel } from "./Panel";

type Side = "BUY" | "SELL";
type Kind = "limit" | "market" | "stop";
type TimeInForce = "GTC" | "IOC" | "FOK";

/** A price picked in the order book (seq makes picking the same price twice count). */
export interface PickedPrice {
  price: string;
  seq: number;
}

const KINDS: Array<[Kind, string]> = [
  ["limit", "Limit"],
  ["market", "Market"],
  ["stop", "Stop-limit"],
];
const PERCENTS = [25, 50, 75, 100];

/** The order type sent for a stop-limit: a stop on the breakout side is a stop-loss limit;
 * on the other side a take-profit limit (where the market offers it). */
function stopType(market: Market, side: Side, stopPrice: string, lastPrice: string | undefined): OrderType {
  if (!lastPrice || !isDecimalInput(stopPrice) || !market.orderTypes.includes("TAKE_PROFIT_LIMIT")) return "STOP_LOSS_LIMIT";
  const breakout = side === "BUY" ? cmp(stopPrice, lastPrice) > 0 : cmp(stopPrice, lastPrice) < 0;
  return breakout ? "STOP_LOSS_LIMIT" : "TAKE_PROFIT_LIMIT";
}

/** A labelled decimal input with its unit and its problem (if any) announced. */
function DecimalField({
  label,
  unit,
  value,
  onChange,
  problem,
}: {
  label: string;
  unit: string;
  value: string;
  onChange: (value: string) => void;
  problem?: OrderProblem;
}) {
  const id = useId();
  return (
    <div>
      <div className="flex items-center rounded border border-line bg-panel-2 focus-within:border-accent">
        <label htmlFor={id} className="w-24 shrink-0 px-2 text-xs text-muted">
          {label}
        </label>
        <input
          id={id}
          type="text"
          inputMode="decimal"
          autoComplete="off"
          value={value}
          onChange={(e) => onChange(e.target.value.replace(",", "."))}
          aria-invalid={problem ? true : undefined}
          aria-describedby={problem ? `${id}-problem` : `${id}-unit`}
          className="tabular min-w-0 flex-1 bg-transparent px-1 py-1.5 text-right text-sm outline-none"
        />
        <span id={`${id}-unit`} className="w-14 shrink-0 px-2 text-right text-xs text-muted">
          {unit}
        </span>
      </div>
      {problem && (
        <p id={`${id}-problem`} className="mt-0.5 text-xs text-sell">
          {problem.message}
        </p>
      )}
    </div>
  );
}

function Toggle({ pressed, onClick, children, tone }: { pressed: boolean; onClick: () => void; children: ReactNode; tone?: "buy" | "sell" }) {
  const on = tone === "buy" ? "bg-buy text-black" : tone === "sell" ? "bg-sell text-black" : "bg-panel-2 text-accent";
  return (
    <button
      type="button"
      aria-pressed={pressed}
      onClick={onClick}
      className={`flex-1 rounded px-2 py-1.5 text-sm font-medium focus-visible:outline-2 focus-visible:outline-accent ${pressed ? on : "text-muted hover:text-fg"}`}
    >
      {children}
    </button>
  );
}

/** Buy/sell form: limit (GTC/IOC/FOK, post-only), market by amount or total, stop-limit;
 * the market's filters are checked before sending and the API's refusal is shown. */
export function OrderForm({
  market,
  signedIn,
  lastPrice,
  bestBid,
  bestAsk,
  picked,
}: {
  market: Market;
  signedIn: boolean;
  lastPrice: string | undefined;
  /** The book's best prices: what a market order meets first. */
  bestBid: string | undefined;
  bestAsk: string | undefined;
  picked: PickedPrice | null;
}) {
  const [side, setSide] = useState<Side>("BUY");
  const [kind, setKind] = useState<Kind>("limit");
  const [price, setPrice] = useState("");
  const [stopPrice, setStopPrice] = useState("");
  const [amount, setAmount] = useState("");
  const [total, setTotal] = useState("");
  const [marketBy, setMarketBy] = useState<"amount" | "total">("amount");
  const [tif, setTif] = useState<TimeInForce>("GTC");
  const [postOnly, setPostOnly] = useState(false);
  const [percent, setPercent] = useState(0);
  const [checked, setChecked] = useState(false);
  const [placedMessage, setPlacedMessage] = useState<string | null>(null);

  const account = useAccount(signedIn);
  const commission = useCommission(market.symbol, signedIn);
  const place = usePlaceOrder(market.symbol);

  // A level clicked in the order book fills the price (a market order becomes a limit one);
  // adjusted while rendering, as React recommends for state following a prop.
  const [seenPick, setSeenPick] = useState(picked);
  if (picked !== seenPick) {
    setSeenPick(picked);
    if (picked) {
      setPrice(picked.price);
      if (kind === "market") setKind("limit");
      if (isDecimalInput(amount)) setTotal(mul(picked.price, amount));
    }
  }

  const base = market.baseAsset;
  const quote = market.quoteAsset;
  const lot = kind === "market" ? market.marketLot : market.lot;
  const available = balanceOf(account.data, side === "BUY" ? quote : base).free;
  const quoteStep = market.quoteAssetPrecision > 0 ? `0.${"0".repeat(market.quoteAssetPrecision - 1)}1` : "1";
  const byTotal = kind === "market" && marketBy === "total";
  // A market order's estimates use the best opposite price, else the last trade's.
  const marketPrice = (side === "BUY" ? bestAsk : bestBid) ?? lastPrice;

  const draft: OrderDraft = {
    side,
    type: kind === "market" ? "MARKET" : kind === "stop" ? stopType(market, side, stopPrice, lastPrice) : postOnly ? "LIMIT_MAKER" : "LIMIT",
    price: kind === "market" ? undefined : price,
    stopPrice: kind === "stop" ? stopPrice : undefined,
    quantity: byTotal ? undefined : amount,
    quoteOrderQty: byTotal ? total : undefined,
  };
  const problems = checked ? validateOrder(market, draft, marketPrice) : [];
  const problem = (field: OrderProblem["field"]) => problems.find((p) => p.field === field);

  const onPrice = (value: string) => {
    setPrice(value);
    if (isDecimalInput(value) && isDecimalInput(amount)) setTotal(mul(value, amount));
  };
  const onAmount = (value: string) => {
    setAmount(value);
    setPercent(0);
    const at = kind === "market" ? marketPrice : price;
    if (at && isDecimalInput(at) && isDecimalInput(value)) setTotal(mul(at, value));
    else if (value === "") setTotal("");
  };
  const onTotal = (value: string) => {
    setTotal(value);
    setPercent(0);
    const at = kind === "market" ? marketPrice : price;
    if (!byTotal && at && isDecimalInput(at) && !isZero(at) && isDecimalInput(value)) setAmount(floorToStep(div(value, at), lot.stepSize));
  };
  const onPercent = (pct: number) => {
    setPercent(pct);
    const share = mul(available, div(String(pct), "100"));
    if (side === "SELL") {
      const qty = floorToStep(share, lot.stepSize);
      setAmount(qty);
      const at = kind === "market" ? marketPrice : price;
      setTotal(at && isDecimalInput(at) ? mul(at, qty) : "");
      return;
    }
    if (byTotal) {
      setTotal(floorToStep(share, quoteStep));
      return;
    }
    const at = kind === "market" ? marketPrice : price;
    if (!at || !isDecimalInput(at) || isZero(at)) return;
    const qty = floorToStep(div(share, at), lot.stepSize);
    setAmount(qty);
    setTotal(mul(at, qty));
  };

  const rate = commission.data ? (draft.type === "LIMIT_MAKER" ? commission.data.standardCommission.maker : commission.data.standardCommission.taker) : undefined;
  const estimate = estimateOf(draft, marketPrice, rate);

  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    setChecked(true);
    setPlacedMessage(null);
    place.reset();
    if (validateOrder(market, draft, marketPrice).length > 0) return;
    const order: Params = { side, type: draft.type };
    if (draft.type === "LIMIT" || draft.type === "STOP_LOSS_LIMIT" || draft.type === "TAKE_PROFIT_LIMIT") order.timeInForce = tif;
    if (draft.price !== undefined) order.price = draft.price;
    if (draft.stopPrice !== undefined) order.stopPrice = draft.stopPrice;
    if (draft.quantity !== undefined) order.quantity = draft.quantity;
    if (draft.quoteOrderQty !== undefined) order.quoteOrderQty = draft.quoteOrderQty;
    place.mutate(order, {
      onSuccess: (placed) => {
        setPlacedMessage(`${placed.side === "BUY" ? "Buy" : "Sell"} order ${placed.orderId} ${placed.status.toLowerCase().replace("_", " ")}.`);
        setAmount("");
        setTotal("");
        setPercent(0);
        setChecked(false);
      },
    });
  };

  const tone = side === "BUY" ? "bg-buy" : "bg-sell";
  return (
    <Panel title="Place order">
      <form onSubmit={submit} noValidate className="flex flex-col gap-2 p-3" aria-label="Order form">
        <div role="group" aria-label="Side" className="flex gap-1 rounded bg-bg p-0.5">
          <Toggle pressed={side === "BUY"} onClick={() => setSide("BUY")} tone="buy">
            Buy
          </Toggle>
          <Toggle pressed={side === "SELL"} onClick={() => setSide("SELL")} tone="sell">
            Sell
          </Toggle>
        </div>
        <div role="group" aria-label="Order type" className="flex gap-1">
          {KINDS.map(([k, label]) => (
            <Toggle key={k} pressed={kind === k} onClick={() => setKind(k)}>
              {label}
            </Toggle>
          ))}
        </div>

        {kind === "stop" && <DecimalField label="Stop price" unit={quote} value={stopPrice} onChange={setStopPrice} problem={problem("stopPrice")} />}
        {kind !== "market" && <DecimalField label="Price" unit={quote} value={price} onChange={onPrice} problem={problem("price")} />}
        {kind === "market" && (
          <fieldset className="flex gap-3 text-xs">
            <legend className="sr-only">Market order by</legend>
            {(["amount", "total"] as const).map((by) => (
              <label key={by} className="flex items-center gap-1">
                <input type="radio" name="market-by" checked={marketBy === by} onChange={() => setMarketBy(by)} className="accent-accent" />
                By {by}
              </label>
            ))}
          </fieldset>
        )}
        {!byTotal && <DecimalField label="Amount" unit={base} value={amount} onChange={onAmount} problem={problem("quantity")} />}
        <div className="flex items-center gap-2">
          <label className="sr-only" htmlFor={`${market.symbol}-pct`}>
            Percent of available balance
          </label>
          <input
            id={`${market.symbol}-pct`}
            type="range"
            min={0}
            max={100}
            step={1}
            value={percent}
            onChange={(e) => onPercent(Number(e.target.value))}
            disabled={!signedIn}
            aria-valuetext={`${percent}% of available`}
            className="flex-1 accent-accent"
          />
          {PERCENTS.map((p) => (
            <button
              key={p}
              type="button"
              disabled={!signedIn}
              onClick={() => onPercent(p)}
              aria-label={`${p}% of available balance`}
              className="rounded border border-line px-1 text-xs text-muted hover:text-fg disabled:opacity-50"
            >
              {p}%
            </button>
          ))}
        </div>
        {(kind !== "market" || byTotal) && (
          <DecimalField label="Total" unit={quote} value={total} onChange={onTotal} problem={problem(byTotal ? "quoteOrderQty" : "total")} />
        )}
        {kind === "market" && !byTotal && problem("total") && <p className="text-xs text-sell">{problem("total")?.message}</p>}

        {kind !== "market" && (
          <div className="flex flex-wrap items-center gap-3 text-xs">
            <label className="flex items-center gap-1">
              Time in force
              <select
                value={tif}
                onChange={(e) => setTif(e.target.value as TimeInForce)}
                disabled={kind === "limit" && postOnly}
                className="rounded border border-line bg-panel-2 px-1 py-0.5"
              >
                <option value="GTC">GTC</option>
                <option value="IOC">IOC</option>
                <option value="FOK">FOK</option>
              </select>
            </label>
            {kind === "limit" && (
              <label className="flex items-center gap-1">
                <input type="checkbox" checked={postOnly} onChange={(e) => setPostOnly(e.target.checked)} className="accent-accent" />
                Post-only
              </label>
            )}
          </div>
        )}

        <dl className="tabular grid grid-cols-2 gap-y-0.5 text-xs">
          <dt className="text-muted">Available</dt>
          <dd className="text-right">{signedIn ? `${formatDecimal(available, side === "BUY" ? market.quoteAssetPrecision : market.baseAssetPrecision, { trim: true })} ${side === "BUY" ? quote : base}` : "—"}</dd>
          <dt className="text-muted">Est. total</dt>
          <dd className="text-right">{estimate.total ? `${estimate.approx ? "≈ " : ""}${formatDecimal(estimate.total, market.priceDecimals + market.qtyDecimals, { trim: true })} ${quote}` : "—"}</dd>
          <dt className="text-muted">Est. fee</dt>
          <dd className="text-right">
            {estimate.fee ? `≤ ${formatDecimal(estimate.fee, 8, { trim: true })} ${side === "BUY" ? base : quote}` : "—"}
          </dd>
        </dl>

        {signedIn ? (
          <button
            type="submit"
            disabled={place.isPending}
            className={`${tone} rounded py-2 text-sm font-semibold text-black hover:brightness-110 focus-visible:outline-2 focus-visible:outline-fg disabled:opacity-60`}
          >
            {side === "BUY" ? "Buy" : "Sell"} {base}
          </button>
        ) : (
          <p className="rounded border border-line p-2 text-center text-sm">
            <Link prefetch={false} href={`/login?next=${encodeURIComponent(`/trade/${market.symbol}`)}`} className="font-semibold text-accent underline">
              Sign in to trade
            </Link>
          </p>
        )}
        {place.isError && (
          <p role="alert" className="rounded bg-sell/15 p-2 text-xs text-sell">
            {errorMessage(place.error)}
          </p>
        )}
        {placedMessage && (
          <p role="status" className="rounded bg-buy/15 p-2 text-xs text-buy">
            {placedMessage}
          </p>
        )}
      </form>
    </Panel>
  );
}

/** The total (quote) and the fee (in the asset received) the order would cost at most. */
function estimateOf(draft: OrderDraft, marketPrice: string | undefined, rate: string | undefined) {
  const ok = (v: string | undefined): v is string => v !== undefined && isDecimalInput(v);
  let value: string | undefined;
  let received: string | undefined; // in the received asset: base when buying, quote when selling
  let approx = false;
  if (draft.type === "MARKET") {
    approx = true;
    if (ok(draft.quoteOrderQty)) {
      value = draft.quoteOrderQty;
      if (ok(marketPrice) && !isZero(marketPrice)) received = draft.side === "BUY" ? div(value, marketPrice) : value;
    } else if (ok(draft.quantity) && ok(marketPrice)) {
      value = mul(draft.quantity, marketPrice);
      received = draft.side === "BUY" ? draft.quantity : value;
    }
  } else if (ok(draft.price) && ok(draft.quantity)) {
    value = mul(draft.price, draft.quantity);
    received = draft.side === "BUY" ? draft.quantity : value;
  }
  const fee = received !== undefined && rate !== undefined ? mul(received, rate) : undefined;
  return { total: value, fee, approx };
}
