/**
 * Every TanStack Query key of the UI, from one factory per feature, so a stream event or a
 * mutation invalidates exactly what it changed. Everything under `user` belongs to the
 * signed-in user and is dropped on sign-out.
 */
export const queryKeys = {
  /** The current session (who am I), null when signed out. */
  session: ["session"] as const,
  /** exchangeInfo: every market and its filters. */
  exchangeInfo: ["exchangeInfo"] as const,
  /** Public market data of one symbol. */
  market: {
    all: (symbol: string) => ["market", symbol] as const,
    depth: (symbol: string) => ["market", symbol, "depth"] as const,
    trades: (symbol: string) => ["market", symbol, "trades"] as const,
    klines: (symbol: string, interval: string) => ["market", symbol, "klines", interval] as const,
    ticker: (symbol: string) => ["market", symbol, "ticker24hr"] as const,
  },
  /** The signed-in user's data (prefix for removal on sign-out). */
  user: {
    all: ["user"] as const,
    /** GET /api/v3/account: balances. */
    account: ["user", "account"] as const,
    /** Open orders, of one symbol or (undefined) of all. */
    openOrders: (symbol?: string) => ["user", "openOrders", symbol ?? "*"] as const,
    openOrdersAll: ["user", "openOrders"] as const,
    /** allOrders of one symbol. */
    orders: (symbol: string) => ["user", "orders", symbol] as const,
    ordersAll: ["user", "orders"] as const,
    /** myTrades of one symbol. */
    trades: (symbol: string) => ["user", "trades", symbol] as const,
    tradesAll: ["user", "trades"] as const,
    /** The commission rates for one symbol. */
    commission: (symbol: string) => ["user", "commission", symbol] as const,
    /** API keys, deposits, withdrawals (W3's account pages). */
    apiKeys: ["user", "apiKeys"] as const,
    wallet: ["user", "wallet"] as const,
  },
} as const;
