import { QueryClient } from "@tanstack/react-query";
import { describe, expect, it } from "vitest";
import { queryKeys } from "./queryKeys";
import type { AccountInfo } from "./trading";
import { applyUserEvent } from "./userStream";

function clientWithAccount(): QueryClient {
  const client = new QueryClient();
  client.setQueryData<AccountInfo>(queryKeys.user.account, {
    canTrade: true,
    balances: [
      { asset: "BTC", free: "1.5", locked: "0" },
      { asset: "USDT", free: "100", locked: "0" },
    ],
  });
  return client;
}

const stale = (client: QueryClient, key: readonly unknown[]) => client.getQueryState(key)?.isInvalidated ?? false;

describe("applyUserEvent", () => {
  it("writes outboundAccountPosition balances into the account query, adding new assets", () => {
    const client = clientWithAccount();
    applyUserEvent(client, {
      e: "outboundAccountPosition",
      B: [
        { a: "USDT", f: "49.9", l: "50.1" },
        { a: "ETH", f: "0.2", l: "0" },
      ],
    });
    expect(client.getQueryData<AccountInfo>(queryKeys.user.account)?.balances).toEqual([
      { asset: "BTC", free: "1.5", locked: "0" },
      { asset: "USDT", free: "49.9", locked: "50.1" },
      { asset: "ETH", free: "0.2", locked: "0" },
    ]);
  });

  it("marks the symbol's orders stale on an executionReport, and its trades on a fill", () => {
    const client = clientWithAccount();
    for (const key of [queryKeys.user.openOrders("BTCUSDT"), queryKeys.user.orders("BTCUSDT"), queryKeys.user.trades("BTCUSDT"), queryKeys.user.orders("ETHUSDT")])
      client.setQueryData(key, []);
    applyUserEvent(client, { e: "executionReport", s: "BTCUSDT", x: "NEW" });
    expect(stale(client, queryKeys.user.openOrders("BTCUSDT"))).toBe(true);
    expect(stale(client, queryKeys.user.orders("BTCUSDT"))).toBe(true);
    expect(stale(client, queryKeys.user.trades("BTCUSDT"))).toBe(false);
    expect(stale(client, queryKeys.user.orders("ETHUSDT"))).toBe(false);
    applyUserEvent(client, { e: "executionReport", s: "BTCUSDT", x: "TRADE" });
    expect(stale(client, queryKeys.user.trades("BTCUSDT"))).toBe(true);
  });

  it("marks the balances stale on a balanceUpdate (deposit, withdrawal)", () => {
    const client = clientWithAccount();
    applyUserEvent(client, { e: "balanceUpdate" });
    expect(stale(client, queryKeys.user.account)).toBe(true);
  });
});
