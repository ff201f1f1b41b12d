"use client";
/**
 * The signed-in user's trading data and actions on the Binance endpoints, authenticated by
 * the session cookie (CSRF header on writes, see api.ts): balances, open orders, order and
 * trade history, commission rates, place / cancel / cancel all. The user data stream
 * (userStream.ts) keeps these queries fresh.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiDelete, apiGet, apiPostForm, type Params } from "./api";
import { queryKeys } from "./queryKeys";

/** One asset's balance. */
export interface Balance {
  asset: string;
  free: string;
  locked: string;
}

/** GET /api/v3/account (the fields the UI uses). */
export interface AccountInfo {
  canTrade: boolean;
  balances: Balance[];
  commissionRates?: { maker: string; taker: string };
}

/** An order as the Binance endpoints render it. */
export interface Order {
  symbol: string;
  orderId: number;
  clientOrderId: string;
  price: string;
  origQty: string;
  executedQty: string;
  cummulativeQuoteQty: string;
  status: string;
  timeInForce: string;
  type: string;
  side: "BUY" | "SELL";
  stopPrice?: string;
  time: number;
  updateTime: number;
}

/** One of the user's fills (myTrades). */
export interface MyTrade {
  symbol: string;
  id: number;
  orderId: number;
  price: string;
  qty: string;
  quoteQty: string;
  commission: string;
  commissionAsset: string;
  time: number;
  isBuyer: boolean;
  isMaker: boolean;
}

/** GET /api/v3/account/commission. */
export interface Commission {
  symbol: string;
  standardCommission: { maker: string; taker: string };
}

/** The user's balances (only while signed in). */
export function useAccount(enabled: boolean) {
  return useQuery({
    queryKey: queryKeys.user.account,
    queryFn: () => apiGet<AccountInfo>("/api/v3/account"),
    enabled,
  });
}

/** The balance of `asset` ("0" when the account has none yet). */
export function balanceOf(account: AccountInfo | undefined, asset: string): Balance {
  return account?.balances.find((b) => b.asset === asset) ?? { asset, free: "0", locked: "0" };
}

/** Open orders of one symbol. */
export function useOpenOrders(symbol: string, enabled: boolean) {
  return useQuery({
    queryKey: queryKeys.user.openOrders(symbol),
    queryFn: () => apiGet<Order[]>("/api/v3/openOrders", { symbol }),
    enabled,
  });
}

/** The latest orders of one symbol, newest first. */
export function useOrderHistory(symbol: string, enabled: boolean) {
  return useQuery({
    queryKey: queryKeys.user.orders(symbol),
    queryFn: async () => (await apiGet<Order[]>("/api/v3/allOrders", { symbol, limit: 100 })).reverse(),
    enabled,
  });
}

/** The latest fills of one symbol, newest first. */
export function useTradeHistory(symbol: string, enabled: boolean) {
  return useQuery({
    queryKey: queryKeys.user.trades(symbol),
    queryFn: async () => (await apiGet<MyTrade[]>("/api/v3/myTrades", { symbol, limit: 100 })).reverse(),
    enabled,
  });
}

/** The maker/taker rates of one symbol. */
export function useCommission(symbol: string, enabled: boolean) {
  return useQuery({
    queryKey: queryKeys.user.commission(symbol),
    queryFn: () => apiGet<Commission>("/api/v3/account/commission", { symbol }),
    enabled,
    staleTime: 300_000,
  });
}

/** Invalidates what an order action changes (the stream does too; this covers its lag). */
function useRefreshAfterOrder(symbol: string) {
  const client = useQueryClient();
  return () => {
    void client.invalidateQueries({ queryKey: queryKeys.user.openOrders(symbol) });
    void client.invalidateQueries({ queryKey: queryKeys.user.orders(symbol) });
    void client.invalidateQueries({ queryKey: queryKeys.user.account });
  };
}

/** Places an order (POST /api/v3/order, form body); errors carry the API's message. */
export function usePlaceOrder(symbol: string) {
  const refresh = useRefreshAfterOrder(symbol);
  return useMutation({
    mutationFn: (order: Params) => apiPostForm<Order>("/api/v3/order", { ...order, symbol, newOrderRespType: "RESULT" }),
    onSuccess: refresh,
  });
}

/** Cancels one order by id. */
export function useCancelOrder(symbol: string) {
  const refresh = useRefreshAfterOrder(symbol);
  return useMutation({
    mutationFn: (orderId: number) => apiDelete<Order>("/api/v3/order", { symbol, orderId }),
    onSuccess: refresh,
  });
}

/** Cancels every open order of the symbol. */
export function useCancelAll(symbol: string) {
  const refresh = useRefreshAfterOrder(symbol);
  return useMutation({
    mutationFn: () => apiDelete<Order[]>("/api/v3/openOrders", { symbol }),
    onSuccess: refresh,
  });
}
