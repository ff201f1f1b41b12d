"use client";
/**
 * The page's one WebSocket to the market gateway (`/stream`, same origin): streams are
 * added and removed with SUBSCRIBE / UNSUBSCRIBE frames as components mount and unmount,
 * the socket reconnects with exponential backoff plus jitter, and every stream is
 * subscribed again on reconnect (its `onOpen` runs again, so a book can resync).
 * The connection state is observable for the header.
 */
import { useEffect, useRef, useSyncExternalStore } from "react";
import { backoffDelay } from "./backoff";

/** What the header shows. */
export type ConnectionState = "connecting" | "open" | "reconnecting";

/** A subscriber of one stream: its messages, and each time the stream (re)starts. */
export interface StreamHandler {
  onMessage: (data: unknown) => void;
  onOpen?: () => void;
}

/** The combined-stream envelope. */
interface Envelope {
  stream?: string;
  data?: unknown;
}

/** One multiplexed gateway connection. */
export class MarketStream {
  private socket: WebSocket | null = null;
  private readonly handlers = new Map<string, Set<StreamHandler>>();
  private readonly stateListeners = new Set<() => void>();
  private state: ConnectionState = "connecting";
  private attempt = 0;
  private nextId = 1;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pendingFlush: ReturnType<typeof setTimeout> | null = null;
  private readonly toSubscribe = new Set<string>();
  private readonly toUnsubscribe = new Set<string>();

  constructor(private readonly url: string) {}

  /** The current connection state. */
  getState = (): ConnectionState => this.state;

  /** Registers a listener of state changes; returns its removal. */
  onStateChange = (listener: () => void): (() => void) => {
    this.stateListeners.add(listener);
    this.connect(); // the header shows the state on every page, streams or not
    return () => this.stateListeners.delete(listener);
  };

  /** Adds a handler of `stream`; returns its removal (unsubscribing the last one). */
  subscribe(stream: string, handler: StreamHandler): () => void {
    let set = this.handlers.get(stream);
    if (!set) {
      set = new Set();
      this.handlers.set(stream, set);
      this.toUnsubscribe.delete(stream);
      this.toSubscribe.add(stream);
      this.scheduleFlush();
    } else if (this.state === "open") {
      // The stream is already live for others: this handler starts now.
      queueMicrotask(() => handler.onOpen?.());
    }
    set.add(handler);
    this.connect();
    return () => {
      const current = this.handlers.get(stream);
      if (!current) return;
      current.delete(handler);
      if (current.size === 0) {
        this.handlers.delete(stream);
        this.toSubscribe.delete(stream);
        this.toUnsubscribe.add(stream);
        this.scheduleFlush();
      }
    };
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    for (const listener of this.stateListeners) listener();
  }

  private connect(): void {
    if (this.socket || this.retryTimer) return;
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.setState("open");
      // A new connection knows no streams: everything wanted is subscribed again.
      this.toUnsubscribe.clear();
      for (const stream of this.handlers.keys()) this.toSubscribe.add(stream);
      this.flush();
    };
    socket.onmessage = (event) => this.dispatch(event.data);
    socket.onclose = () => {
      this.socket = null;
      this.setState("reconnecting");
      const delay = backoffDelay(this.attempt++);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.connect();
      }, delay);
    };
    socket.onerror = () => socket.close();
  }

  private scheduleFlush(): void {
    // Components mount together: one frame for all their streams.
    if (this.pendingFlush) return;
    this.pendingFlush = setTimeout(() => {
      this.pendingFlush = null;
      this.flush();
    }, 0);
  }

  private flush(): void {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    if (this.toUnsubscribe.size > 0) {
      socket.send(JSON.stringify({ method: "UNSUBSCRIBE", params: [...this.toUnsubscribe], id: this.nextId++ }));
      this.toUnsubscribe.clear();
    }
    if (this.toSubscribe.size > 0) {
      const streams = [...this.toSubscribe];
      this.toSubscribe.clear();
      socket.send(JSON.stringify({ method: "SUBSCRIBE", params: streams, id: this.nextId++ }));
      for (const stream of streams) for (const handler of this.handlers.get(stream) ?? []) handler.onOpen?.();
    }
  }

  private dispatch(raw: unknown): void {
    if (typeof raw !== "string") return;
    let message: Envelope;
    try {
      message = JSON.parse(raw) as Envelope;
    } catch {
      return;
    }
    if (typeof message.stream !== "string") return; // method answers: {"result", "id"}
    for (const handler of this.handlers.get(message.stream) ?? []) handler.onMessage(message.data);
  }
}

let shared: MarketStream | null = null;

/** The page's gateway connection (created on first use, in the browser only). */
export function marketStream(): MarketStream {
  if (!shared) {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    shared = new MarketStream(`${scheme}://${window.location.host}/stream`);
  }
  return shared;
}

/** Subscribes a component to `stream` (null: none) while mounted; handlers may change freely. */
export function useStream(stream: string | null, onMessage: (data: unknown) => void, onOpen?: () => void): void {
  const latest = useRef({ onMessage, onOpen });
  useEffect(() => {
    latest.current = { onMessage, onOpen };
  });
  useEffect(() => {
    if (!stream) return;
    return marketStream().subscribe(stream, {
      onMessage: (data) => latest.current.onMessage(data),
      onOpen: () => latest.current.onOpen?.(),
    });
  }, [stream]);
}

const subscribeState = (listener: () => void) => marketStream().onStateChange(listener);
const readState = () => marketStream().getState();
const serverState = (): ConnectionState => "connecting";

/** The gateway connection state, re-rendering on change. */
export function useConnectionState(): ConnectionState {
  return useSyncExternalStore(subscribeState, readState, serverState);
}
