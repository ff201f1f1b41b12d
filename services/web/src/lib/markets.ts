"use client";
/**
 * Markets from `GET /api/v3/exchangeInfo`, with their filters read once into a typed
 * `Market`, and `validateOrder`: the exchange's filter rules checked in the browser before
 * an order is sent (the API checks them again; this only spares a round trip and says why).
 */
import { useQuery } from "@tanstack/react-query";
import { apiGet } from "./api";
import { cmp, decimalsOf, isDecimalInput, isZero, mul, onGrid } from "./decimal";
import { queryKeys } from "./queryKeys";

/** A raw filter entry of exchangeInfo. */
export interface RawFilter {
  filterType: string;
  [field: string]: string | number | boolean;
}

/** A symbol as exchangeInfo describes it (the fields the UI uses). */
export interface RawSymbol {
  symbol: string;
  status: string;
  baseAsset: string;
  quoteAsset: string;
  baseAssetPrecision: number;
  quoteAssetPrecision: number;
  orderTypes: string[];
  quoteOrderQtyMarketAllowed: boolean;
  filters: RawFilter[];
}

/** The exchangeInfo answer (the fields the UI uses). */
export interface ExchangeInfo {
  serverTime: number;
  symbols: RawSymbol[];
}

/** A market with its filters as decimal strings. */
export interface Market {
  symbol: string;
  status: string;
  baseAsset: string;
  quoteAsset: string;
  baseAssetPrecision: number;
  quoteAssetPrecision: number;
  orderTypes: string[];
  quoteOrderQtyMarketAllowed: boolean;
  /** PRICE_FILTER. */
  price: { minPrice: string; maxPrice: string; tickSize: string };
  /** LOT_SIZE (limit orders). */
  lot: { minQty: string; maxQty: string; stepSize: string };
  /** MARKET_LOT_SIZE (market orders). */
  marketLot: { minQty: string; maxQty: string; stepSize: string };
  /** NOTIONAL. */
  notional: { minNotional: string; maxNotional: string; applyMinToMarket: boolean; applyMaxToMarket: boolean };
  /** Decimal places of prices (from tickSize) and quantities (from stepSize). */
  priceDecimals: number;
  qtyDecimals: number;
}

function filter(raw: RawSymbol, type: string): RawFilter {
  return raw.filters.find((f) => f.filterType === type) ?? { filterType: type };
}

function text(f: RawFilter, field: string, fallback: string): string {
  const value = f[field];
  return typeof value === "string" ? value : fallback;
}

/** A Market from an exchangeInfo symbol (missing filters are treated as unbounded). */
export function toMarket(raw: RawSymbol): Market {
  const price = filter(raw, "PRICE_FILTER");
  const lot = filter(raw, "LOT_SIZE");
  const marketLot = filter(raw, "MARKET_LOT_SIZE");
  const notional = filter(raw, "NOTIONAL");
  const tickSize = text(price, "tickSize", "0");
  const stepSize = text(lot, "stepSize", "0");
  return {
    symbol: raw.symbol,
    status: raw.status,
    baseAsset: raw.baseAsset,
    quoteAsset: raw.quoteAsset,
    baseAssetPrecision: raw.baseAssetPrecision,
    quoteAssetPrecision: raw.quoteAssetPrecision,
    orderTypes: raw.orderTypes,
    quoteOrderQtyMarketAllowed: raw.quoteOrderQtyMarketAllowed,
    price: { minPrice: text(price, "minPrice", "0"), maxPrice: text(price, "maxPrice", "0"), tickSize },
    lot: { minQty: text(lot, "minQty", "0"), maxQty: text(lot, "maxQty", "0"), stepSize },
    marketLot: {
      minQty: text(marketLot, "minQty", "0"),
      maxQty: text(marketLot, "maxQty", "0"),
      stepSize: text(marketLot, "stepSize", "0"),
    },
    notional: {
      minNotional: text(notional, "minNotional", "0"),
      maxNotional: text(notional, "maxNotional", "0"),
      applyMinToMarket: notional.applyMinToMarket === true,
      applyMaxToMarket: notional.applyMaxToMarket === true,
    },
    priceDecimals: decimalsOf(tickSize),
    qtyDecimals: decimalsOf(stepSize),
  };
}

/** Fetches every market. */
export async function fetchMarkets(): Promise<Market[]> {
  const info = await apiGet<ExchangeInfo>("/api/v3/exchangeInfo");
  return info.symbols.map(toMarket);
}

/** Every market (exchangeInfo), refreshed every few minutes. */
export function useMarkets() {
  return useQuery({ queryKey: queryKeys.exchangeInfo, queryFn: fetchMarkets, staleTime: 300_000 });
}

/** One market by symbol (data undefined while loading, null if the exchange has none). */
export function useMarket(symbol: string) {
  const markets = useMarkets();
  const market = markets.data ? (markets.data.find((m) => m.symbol === symbol) ?? null) : undefined;
  return { ...markets, market };
}

/** The order types the form can send. */
export type OrderType =
  | "LIMIT"
  | "LIMIT_MAKER"
  | "MARKET"
  | "STOP_LOSS_LIMIT"
  | "TAKE_PROFIT_LIMIT";

/** An order as the form holds it: decimal strings as typed. */
export interface OrderDraft {
  side: "BUY" | "SELL";
  type: OrderType;
  price?: string;
  quantity?: string;
  /** Market orders by total (quote amount) instead of quantity. */
  quoteOrderQty?: string;
  stopPrice?: string;
}

/** A problem with one field of a draft, to show next to it. */
export interface OrderProblem {
  field: "price" | "quantity" | "quoteOrderQty" | "stopPrice" | "total";
  message: string;
}

const needsPrice = (type: OrderType) => type !== "MARKET";
const needsStop = (type: OrderType) => type === "STOP_LOSS_LIMIT" || type === "TAKE_PROFIT_LIMIT";

function checkNumber(value: string | undefined, field: OrderProblem["field"], label: string): OrderProblem | null {
  if (value === undefined || value.trim() === "") return { field, message: `Enter the ${label}.` };
  if (!isDecimalInput(value)) return { field, message: `The ${label} must be a number like 12.5.` };
  if (isZero(value)) return { field, message: `The ${label} must be above zero.` };
  return null;
}

function checkPrice(market: Market, value: string, field: "price" | "stopPrice", label: string): OrderProblem | null {
  const { minPrice, maxPrice, tickSize } = market.price;
  if (!isZero(minPrice) && cmp(value, minPrice) < 0) return { field, message: `The ${label} must be at least ${minPrice}.` };
  if (!isZero(maxPrice) && cmp(value, maxPrice) > 0) return { field, message: `The ${label} must be at most ${maxPrice}.` };
  if (!onGrid(value, tickSize, minPrice)) return { field, message: `The ${label} must be a multiple of ${tickSize}.` };
  return null;
}

function checkQuantity(lot: Market["lot"], value: string): OrderProblem | null {
  const { minQty, maxQty, stepSize } = lot;
  if (cmp(value, minQty) < 0) return { field: "quantity", message: `The amount must be at least ${minQty}.` };
  if (!isZero(maxQty) && cmp(value, maxQty) > 0) return { field: "quantity", message: `The amount must be at most ${maxQty}.` };
  if (!onGrid(value, stepSize, minQty)) return { field: "quantity", message: `The amount must be a multiple of ${stepSize}.` };
  return null;
}

function checkNotional(market: Market, notional: string, isMarket: boolean): OrderProblem | null {
  const { minNotional, maxNotional, applyMinToMarket, applyMaxToMarket } = market.notional;
  if ((!isMarket || applyMinToMarket) && cmp(notional, minNotional) < 0)
    return { field: "total", message: `The total must be at least ${minNotional} ${market.quoteAsset}.` };
  if ((!isMarket || applyMaxToMarket) && !isZero(maxNotional) && cmp(notional, maxNotional) > 0)
    return { field: "total", message: `The total must be at most ${maxNotional} ${market.quoteAsset}.` };
  return null;
}

/**
 * The market's filters (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL) checked on a
 * draft; `referencePrice` (e.g. the last or average price) estimates a market order's
 * notional. Returns the problems found, empty when the order may be sent.
 */
export function validateOrder(market: Market, draft: OrderDraft, referencePrice?: string): OrderProblem[] {
  const problems: OrderProblem[] = [];
  const isMarket = draft.type === "MARKET";
  if (needsStop(draft.type)) {
    const bad = checkNumber(draft.stopPrice, "stopPrice", "stop price") ?? checkPrice(market, draft.stopPrice!, "stopPrice", "stop price");
    if (bad) problems.push(bad);
  }
  if (needsPrice(draft.type)) {
    const bad = checkNumber(draft.price, "price", "price") ?? checkPrice(market, draft.price!, "price", "price");
    if (bad) problems.push(bad);
  }
  if (isMarket && draft.quoteOrderQty !== undefined) {
    const bad = checkNumber(draft.quoteOrderQty, "quoteOrderQty", "total");
    if (bad) problems.push(bad);
    else {
      const notional = checkNotional(market, draft.quoteOrderQty, true);
      if (notional) problems.push({ ...notional, field: "quoteOrderQty" });
    }
    return problems;
  }
  const qtyBad = checkNumber(draft.quantity, "quantity", "amount") ?? checkQuantity(isMarket ? market.marketLot : market.lot, draft.quantity!);
  if (qtyBad) problems.push(qtyBad);
  const price = isMarket ? referencePrice : draft.price;
  if (!qtyBad && price !== undefined && isDecimalInput(price) && problems.length === 0) {
    const notional = checkNotional(market, mul(price, draft.quantity!), isMarket);
    if (notional) problems.push(notional);
  }
  return problems;
}
