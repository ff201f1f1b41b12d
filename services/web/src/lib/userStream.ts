"use client";
/**
 * The signed-in user's live data: `/ws-api/v3` on the page's own origin (the browser sends
 * the HttpOnly session cookie with the upgrade, which the API accepts on a same-origin
 * request), then `userDataStream.subscribe`. Each event updates or invalidates the
 * TanStack queries it changes (balances, open orders, order history, trade history), so
 * every open screen follows without polling. Reconnects with backoff, like the gateway.
 */
import { type QueryClient, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { backoffDelay } from "./backoff";
import { queryKeys } from "./queryKeys";
import type { AccountInfo } from "./trading";

/** `executionReport` fields the UI reacts to. */
interface ExecutionReport {
  e: "executionReport";
  s: string;
  x: string;
}

/** `outboundAccountPosition`: the new free/locked of the changed assets. */
interface AccountPosition {
  e: "outboundAccountPosition";
  B: Array<{ a: string; f: string; l: string }>;
}

/** An event of the user data stream (the kinds the UI reacts to, and any other). */
export type UserEvent = ExecutionReport | AccountPosition | { e: "balanceUpdate" } | { e: string };

/** Writes one user event into the query cache. */
export function applyUserEvent(client: QueryClient, event: UserEvent): void {
  if (event.e === "executionReport") {
    const report = event as ExecutionReport;
    void client.invalidateQueries({ queryKey: queryKeys.user.openOrdersAll });
    void client.invalidateQueries({ queryKey: queryKeys.user.orders(report.s) });
    if (report.x === "TRADE") void client.invalidateQueries({ queryKey: queryKeys.user.trades(report.s) });
  } else if (event.e === "outboundAccountPosition") {
    const position = event as AccountPosition;
    const changed = new Map(position.B.map((b) => [b.a, b]));
    client.setQueryData<AccountInfo>(queryKeys.user.account, (account) => {
      if (!account) return account;
      const seen = new Set<string>();
      const balances = account.balances.map((b) => {
        const update = changed.get(b.asset);
        if (!update) return b;
        seen.add(b.asset);
        return { asset: b.asset, free: update.f, locked: update.l };
      });
      for (const [asset, b] of changed) if (!seen.has(asset)) balances.push({ asset, free: b.f, locked: b.l });
      return { ...account, balances };
    });
  } else if (event.e === "balanceUpdate") {
    void client.invalidateQueries({ queryKey: queryKeys.user.account });
    void client.invalidateQueries({ queryKey: queryKeys.user.wallet });
  }
}

/** Keeps the user data stream open while `enabled` (i.e. while signed in). */
export function useUserStream(enabled: boolean): void {
  const client = useQueryClient();
  useEffect(() => {
    if (!enabled) return;
    let socket: WebSocket | null = null;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let attempt = 0;
    let stopped = false;
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const connect = () => {
      socket = new WebSocket(`${scheme}://${window.location.host}/ws-api/v3?returnRateLimits=false`);
      socket.onopen = () => {
        socket?.send(JSON.stringify({ id: "user", method: "userDataStream.subscribe" }));
      };
      socket.onmessage = (message) => {
        let parsed: { id?: string; status?: number; event?: UserEvent };
        try {
          parsed = JSON.parse(String(message.data));
        } catch {
          return;
        }
        if (parsed.id === "user" && parsed.status === 200) {
          attempt = 0;
          // Anything that happened while the stream was down: read it again.
          void client.invalidateQueries({ queryKey: queryKeys.user.all });
        } else if (parsed.id === "user") {
          // Refused: a signed-out session (4xx) stays refused, so stop and let the session
          // query find out; anything else (rate limit, server trouble) is retried.
          const status = parsed.status ?? 0;
          if (status >= 400 && status < 500 && status !== 429) {
            stopped = true;
            void client.invalidateQueries({ queryKey: queryKeys.session });
          }
          socket?.close();
        }
        if (parsed.event) applyUserEvent(client, parsed.event);
      };
      socket.onclose = () => {
        socket = null;
        if (stopped) return;
        timer = setTimeout(connect, backoffDelay(attempt++));
      };
    };
    connect();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      socket?.close();
    };
  }, [enabled, client]);
}
