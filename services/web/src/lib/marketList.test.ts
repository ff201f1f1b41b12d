import { describe, expect, it } from "vitest";
import { applyMiniTickers, change24h, filterMarkets, formatPrice, formatVolume, lastPriceOf, mergeNewer, tickersFromRest } from "./marketList";

const rest = tickersFromRest([
  { symbol: "BTCUSDT", lastPrice: "101.00", openPrice: "100.00", volume: "2.000", quoteVolume: "201.00", closeTime: 1_000 },
  { symbol: "ETHUSDT", lastPrice: "10.00", openPrice: "0.00", volume: "0.000", quoteVolume: "0.00", closeTime: 1_000 },
]);

function mini(s: string, c: string, o: string, E: number) {
  return { e: "24hrMiniTicker", E, s, c, o, h: c, l: o, v: "1.000", q: "5.00" };
}

describe("change24h", () => {
  it("signs and rounds the percentage half up to two places", () => {
    expect(change24h("100.00", "101.00")).toEqual({ direction: "up", amount: "1", percentText: "+1.00%" });
    expect(change24h("3.00", "2.00")).toEqual({ direction: "down", amount: "-1", percentText: "-33.33%" });
    expect(change24h("3", "4")).toMatchObject({ percentText: "+33.33%" });
    expect(change24h("8", "8.0005")).toMatchObject({ direction: "up", percentText: "+0.01%" }); // 0.00625 → 0.01
  });

  it("is exact where floats are not", () => {
    // 0.3 − 0.1 is 0.19999999999999998 in floats: the change must be exactly 200.00%.
    expect(change24h("0.1", "0.3")).toEqual({ direction: "up", amount: "0.2", percentText: "+200.00%" });
  });

  it("calls a change too small to show flat, and no trade in 24 h no change", () => {
    expect(change24h("100000", "100001")).toEqual({ direction: "flat", amount: "1", percentText: "0.00%" });
    expect(change24h("0.00", "10.00")).toEqual({ direction: "flat", amount: "0", percentText: "0.00%" });
    expect(change24h("5", "5")).toMatchObject({ direction: "flat", percentText: "0.00%" });
  });
});

describe("applyMiniTickers", () => {
  it("replaces the changed markets and keeps the others", () => {
    const next = applyMiniTickers(rest, [mini("BTCUSDT", "99.00", "100.00", 2_000)]);
    expect(next.BTCUSDT).toEqual({ symbol: "BTCUSDT", lastPrice: "99.00", openPrice: "100.00", volume: "1.000", quoteVolume: "5.00", time: 2_000 });
    expect(next.ETHUSDT).toBe(rest.ETHUSDT);
    expect(rest.BTCUSDT!.lastPrice).toBe("101.00"); // the previous map is not mutated
  });

  it("adds a market the REST seed did not have", () => {
    expect(applyMiniTickers(rest, [mini("SOLUSDT", "1", "1", 2_000)]).SOLUSDT?.lastPrice).toBe("1");
  });

  it("ignores older and malformed entries, and returns the same map when nothing changed", () => {
    expect(applyMiniTickers(rest, [mini("BTCUSDT", "1", "1", 500)])).toBe(rest);
    expect(applyMiniTickers(rest, [{ s: "BTCUSDT", c: 1 }, null, "x"])).toBe(rest);
    expect(applyMiniTickers(rest, { result: null })).toBe(rest);
  });
});

describe("filterMarkets", () => {
  const markets = [
    { symbol: "BTCUSDT", baseAsset: "BTC", quoteAsset: "USDT" },
    { symbol: "ETHUSDT", baseAsset: "ETH", quoteAsset: "USDT" },
    { symbol: "ETHBTC", baseAsset: "ETH", quoteAsset: "BTC" },
  ];
  const symbols = (q: string) => filterMarkets(markets, q).map((m) => m.symbol);

  it("keeps everything for an empty query", () => {
    expect(symbols("  ")).toEqual(["BTCUSDT", "ETHUSDT", "ETHBTC"]);
  });

  it("matches symbols and assets case-insensitively", () => {
    expect(symbols("btc")).toEqual(["BTCUSDT", "ETHBTC"]);
    expect(symbols("ethu")).toEqual(["ETHUSDT"]);
    expect(symbols("usdt")).toEqual(["BTCUSDT", "ETHUSDT"]);
  });

  it("understands a pair written with a separator", () => {
    expect(symbols("eth/btc")).toEqual(["ETHBTC"]);
    expect(symbols("ETH usd")).toEqual(["ETHUSDT"]);
    expect(symbols("doge")).toEqual([]);
  });
});

describe("formatting", () => {
  it("uses the market's grid and a dash for missing figures", () => {
    expect(formatPrice("12345.6", "0.01000000")).toBe("12,345.60");
    expect(formatVolume("0.123456", "0.00100000")).toBe("0.123");
    expect(formatPrice(undefined, "0.01")).toBe("—");
  });
});

describe("mergeNewer", () => {
  it("keeps the newer figures of each market", () => {
    const streamed = applyMiniTickers(rest, [mini("BTCUSDT", "99.00", "100.00", 5_000)]);
    const reloaded = tickersFromRest([
      { symbol: "BTCUSDT", lastPrice: "98.00", openPrice: "100.00", volume: "1", quoteVolume: "1", closeTime: 4_000 },
      { symbol: "ETHUSDT", lastPrice: "11.00", openPrice: "10.00", volume: "1", quoteVolume: "1", closeTime: 4_000 },
    ]);
    const merged = mergeNewer(streamed, reloaded);
    expect(merged.BTCUSDT!.lastPrice).toBe("99.00");
    expect(merged.ETHUSDT!.lastPrice).toBe("11.00");
    expect(mergeNewer(undefined, reloaded)).toBe(reloaded);
  });
});

describe("lastPriceOf", () => {
  it("has no price for a market that never traded", () => {
    expect(lastPriceOf({ lastPrice: "0.00" })).toBeUndefined();
    expect(lastPriceOf(undefined)).toBeUndefined();
    expect(lastPriceOf({ lastPrice: "5.10" })).toBe("5.10");
  });
});
