import { describe, expect, it } from "vitest";
import { type Market, type RawSymbol, toMarket, validateOrder } from "./markets";

// exchangeInfo's BTCUSDT as the API renders it (cex.api.routes.general.filters).
const raw: RawSymbol = {
  symbol: "BTCUSDT",
  status: "TRADING",
  baseAsset: "BTC",
  quoteAsset: "USDT",
  baseAssetPrecision: 8,
  quoteAssetPrecision: 8,
  orderTypes: ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
  quoteOrderQtyMarketAllowed: true,
  filters: [
    { filterType: "PRICE_FILTER", minPrice: "0.01", maxPrice: "92233720368547758.07", tickSize: "0.01" },
    { filterType: "LOT_SIZE", minQty: "0.00001", maxQty: "9000", stepSize: "0.00001" },
    { filterType: "MARKET_LOT_SIZE", minQty: "0.00001", maxQty: "100", stepSize: "0.00001" },
    { filterType: "NOTIONAL", minNotional: "5", applyMinToMarket: true, maxNotional: "1000000", applyMaxToMarket: false, avgPriceMins: 5 },
  ],
};
const market: Market = toMarket(raw);

const fields = (problems: ReturnType<typeof validateOrder>) => problems.map((p) => p.field);

describe("toMarket", () => {
  it("reads the filters and the display precisions", () => {
    expect(market.price.tickSize).toBe("0.01");
    expect(market.marketLot.maxQty).toBe("100");
    expect(market.notional.applyMinToMarket).toBe(true);
    expect([market.priceDecimals, market.qtyDecimals]).toEqual([2, 5]);
  });
});

describe("validateOrder", () => {
  it("accepts a limit order on the grid", () => {
    expect(validateOrder(market, { side: "BUY", type: "LIMIT", price: "30000.01", quantity: "0.001" })).toEqual([]);
  });

  it("refuses a price off the tick grid or a quantity off the step", () => {
    const problems = validateOrder(market, { side: "BUY", type: "LIMIT", price: "30000.015", quantity: "0.000015" });
    expect(fields(problems)).toEqual(["price", "quantity"]);
    expect(problems[0]?.message).toContain("0.01");
  });

  it("checks the grid in decimals: 0.1 + 0.2 steps are on a 0.1 grid", () => {
    const tenths = toMarket({ ...raw, filters: [{ filterType: "LOT_SIZE", minQty: "0.1", maxQty: "100", stepSize: "0.1" }] });
    expect(validateOrder(tenths, { side: "SELL", type: "LIMIT", price: "1", quantity: "0.3" })).toEqual([]);
  });

  it("refuses a notional below the minimum, and above the maximum", () => {
    expect(fields(validateOrder(market, { side: "BUY", type: "LIMIT", price: "100", quantity: "0.04" }))).toEqual(["total"]);
    expect(fields(validateOrder(market, { side: "BUY", type: "LIMIT", price: "100000", quantity: "11" }))).toEqual(["total"]);
  });

  it("applies MARKET_LOT_SIZE and the minimum notional at the reference price to a market order", () => {
    expect(fields(validateOrder(market, { side: "SELL", type: "MARKET", quantity: "101" }, "30000"))).toEqual(["quantity"]);
    expect(fields(validateOrder(market, { side: "SELL", type: "MARKET", quantity: "0.0001" }, "30000"))).toEqual(["total"]);
    expect(validateOrder(market, { side: "SELL", type: "MARKET", quantity: "0.0002" }, "30000")).toEqual([]);
  });

  it("checks a market order by total against the minimum notional", () => {
    expect(fields(validateOrder(market, { side: "BUY", type: "MARKET", quoteOrderQty: "4.99" }))).toEqual(["quoteOrderQty"]);
    expect(validateOrder(market, { side: "BUY", type: "MARKET", quoteOrderQty: "5" })).toEqual([]);
  });

  it("needs a stop price on the grid for stop-limit orders", () => {
    const draft = { side: "SELL", type: "STOP_LOSS_LIMIT", price: "29000", quantity: "0.01" } as const;
    expect(fields(validateOrder(market, draft))).toEqual(["stopPrice"]);
    expect(fields(validateOrder(market, { ...draft, stopPrice: "29100.001" }))).toEqual(["stopPrice"]);
    expect(validateOrder(market, { ...draft, stopPrice: "29100" })).toEqual([]);
  });

  it("refuses empty, zero and malformed numbers with a message", () => {
    const problems = validateOrder(market, { side: "BUY", type: "LIMIT", price: "", quantity: "1e3" });
    expect(problems.map((p) => p.message)).toEqual(["Enter the price.", "The amount must be a number like 12.5."]);
    expect(fields(validateOrder(market, { side: "BUY", type: "LIMIT", price: "0", quantity: "1" }))).toEqual(["price"]);
  });
});
