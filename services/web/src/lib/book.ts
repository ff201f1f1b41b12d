/**
 * The local order book, kept by Binance's documented procedure (pure functions, no I/O):
 *
 * 1. open the `<symbol>@depth@100ms` stream and buffer its diffs;
 * 2. fetch the `/api/v3/depth` snapshot (its `lastUpdateId`);
 * 3. drop every diff with `u` ≤ lastUpdateId;
 * 4. the first diff applied must have `U` ≤ lastUpdateId + 1 ≤ `u`;
 * 5. each later diff must have `U` = previous `u` + 1; anything else is a gap: resync from 1.
 *
 * A level's quantity is absolute; quantity 0 removes the level. Prices are kept as the
 * exchange formats them (every message of one market uses the same precision).
 */
import Decimal from "decimal.js";
import { Dec, compareDecimalStrings } from "./decimal";

/** Levels per side of the REST snapshot (weight 50; enough for the coarsest grouping). */
export const DEPTH_LIMIT = 1000;

/** The URL of a symbol's book snapshot (the trading page preloads it). */
export function depthSnapshotUrl(symbol: string): string {
  return `/api/v3/depth?symbol=${encodeURIComponent(symbol)}&limit=${DEPTH_LIMIT}`;
}

/** A [price, quantity] pair as the API sends it. */
export type Level = [price: string, quantity: string];

/** The REST snapshot (`GET /api/v3/depth`). */
export interface DepthSnapshot {
  lastUpdateId: number;
  bids: Level[];
  asks: Level[];
}

/** One diff event of `<symbol>@depth[@100ms]`. */
export interface DepthDiff {
  U: number;
  u: number;
  b: Level[];
  a: Level[];
}

/** A synced book: quantities by price per side, and the last update id applied. */
export interface Book {
  lastUpdateId: number;
  bids: Map<string, string>;
  asks: Map<string, string>;
}

/** The procedure's state: waiting for a snapshot (diffs buffered), or live. */
export type BookSync =
  | { status: "buffering"; buffered: DepthDiff[] }
  | { status: "live"; book: Book; firstApplied: boolean };

/** What the caller must do after a step. */
export type SyncOutcome = { sync: BookSync; resync: boolean };

/** The start (and the state after a gap): buffer diffs until a snapshot arrives. */
export function emptySync(): BookSync {
  return { status: "buffering", buffered: [] };
}

const MAX_BUFFERED = 1_000;

function isZeroQty(quantity: string): boolean {
  return /^0*(\.0*)?$/.test(quantity);
}

function applyLevels(side: Map<string, string>, levels: Level[]): void {
  for (const [price, quantity] of levels) {
    if (isZeroQty(quantity)) side.delete(price);
    else side.set(price, quantity);
  }
}

/** A book from a REST snapshot. */
export function bookFromSnapshot(snapshot: DepthSnapshot): Book {
  const book: Book = { lastUpdateId: snapshot.lastUpdateId, bids: new Map(), asks: new Map() };
  applyLevels(book.bids, snapshot.bids);
  applyLevels(book.asks, snapshot.asks);
  return book;
}

/**
 * Applies one diff to a live book (mutating a copy): "stale" when it is older than the book
 * (dropped), "gap" when an update is missing (resync), else "applied".
 */
export function applyDiff(book: Book, diff: DepthDiff, firstApplied: boolean): { result: "applied" | "stale" | "gap"; book: Book } {
  if (diff.u <= book.lastUpdateId) return { result: "stale", book };
  const next = book.lastUpdateId + 1;
  const fits = firstApplied ? diff.U === next : diff.U <= next && next <= diff.u;
  if (!fits) return { result: "gap", book };
  const updated: Book = { lastUpdateId: diff.u, bids: new Map(book.bids), asks: new Map(book.asks) };
  applyLevels(updated.bids, diff.b);
  applyLevels(updated.asks, diff.a);
  return { result: "applied", book: updated };
}

/** Feeds a diff event to the procedure. */
export function onDiff(sync: BookSync, diff: DepthDiff): SyncOutcome {
  if (sync.status === "buffering") {
    const buffered = [...sync.buffered, diff].slice(-MAX_BUFFERED);
    return { sync: { status: "buffering", buffered }, resync: false };
  }
  const { result, book } = applyDiff(sync.book, diff, sync.firstApplied);
  if (result === "gap") return { sync: emptySync(), resync: true };
  if (result === "stale") return { sync, resync: false };
  return { sync: { status: "live", book, firstApplied: true }, resync: false };
}

/**
 * Feeds the REST snapshot: the buffered diffs are replayed on it. `resync` is true when the
 * snapshot is older than the stream can bridge (fetch another one; buffering goes on).
 */
export function onSnapshot(sync: BookSync, snapshot: DepthSnapshot): SyncOutcome {
  const buffered = sync.status === "buffering" ? sync.buffered : [];
  let book = bookFromSnapshot(snapshot);
  let firstApplied = false;
  for (const diff of buffered) {
    const step = applyDiff(book, diff, firstApplied);
    if (step.result === "gap") {
      // The snapshot predates what the stream still holds: keep the newer diffs, refetch.
      return { sync: { status: "buffering", buffered: buffered.filter((d) => d.u > snapshot.lastUpdateId) }, resync: true };
    }
    if (step.result === "applied") {
      book = step.book;
      firstApplied = true;
    }
  }
  return { sync: { status: "live", book, firstApplied }, resync: false };
}

/** Both sides of a book as sorted levels, best first (what the book and depth views draw). */
export interface SortedBook {
  lastUpdateId: number;
  bids: Level[];
  asks: Level[];
}

/** The book's sides sorted best first. */
export function sortBook(book: Book): SortedBook {
  return { lastUpdateId: book.lastUpdateId, bids: sortedLevels(book.bids, "bids"), asks: sortedLevels(book.asks, "asks") };
}

/** Bids best (highest) first, or asks best (lowest) first, as [price, quantity]. */
export function sortedLevels(side: Map<string, string>, kind: "bids" | "asks"): Level[] {
  const levels = [...side.entries()];
  levels.sort(kind === "bids" ? (x, y) => compareDecimalStrings(y[0], x[0]) : (x, y) => compareDecimalStrings(x[0], y[0]));
  return levels;
}

/**
 * Levels merged into buckets of `step` (a multiple of the tick size): bids round down,
 * asks round up, so a bucket never promises a better price than its orders. Input sorted
 * best first; output too (at most `most` buckets), quantities summed exactly.
 */
export function groupLevels(levels: Level[], step: string, kind: "bids" | "asks", decimals: number, most = Infinity): Level[] {
  const size = new Dec(step);
  if (size.lte(0)) return levels.slice(0, most);
  const rounding = kind === "bids" ? Decimal.ROUND_DOWN : Decimal.ROUND_UP;
  const grouped: Level[] = [];
  let bucket: string | null = null;
  let total = new Dec(0);
  for (const [price, quantity] of levels) {
    const key = new Dec(price).dividedBy(size).toDecimalPlaces(0, rounding).times(size).toFixed(decimals);
    if (key !== bucket) {
      if (bucket !== null) grouped.push([bucket, total.toFixed()]);
      if (grouped.length >= most) return grouped;
      bucket = key;
      total = new Dec(0);
    }
    total = total.plus(quantity);
  }
  if (bucket !== null) grouped.push([bucket, total.toFixed()]);
  return grouped;
}

/** Running totals down each side (for the depth chart and the book's depth bars). */
export function cumulative(levels: Level[]): Array<{ price: string; quantity: string; total: string }> {
  let total = new Dec(0);
  return levels.map(([price, quantity]) => {
    total = total.plus(quantity);
    return { price, quantity, total: total.toFixed() };
  });
}

/** The cumulative levels a depth chart shows: at most `most` per side, within
 * max(mid × `window`, spread × 1.5) of the mid price. Stray far orders would squash the
 * interesting part, yet a thin book with a wide spread must still show both sides. */
export function depthLevels(book: SortedBook, most = 100, window = "0.1"): {
  bids: Array<{ price: string; quantity: string; total: string }>;
  asks: Array<{ price: string; quantity: string; total: string }>;
} {
  const bestBid = book.bids[0]?.[0];
  const bestAsk = book.asks[0]?.[0];
  if (bestBid === undefined || bestAsk === undefined) {
    return { bids: cumulative(book.bids.slice(0, most)), asks: cumulative(book.asks.slice(0, most)) };
  }
  const mid = new Dec(bestBid).plus(bestAsk).div(2);
  const spread = new Dec(bestAsk).minus(bestBid);
  const reach = Dec.max(mid.times(window), spread.times("1.5"));
  const near = ([price]: Level) => new Dec(price).minus(mid).abs().lte(reach);
  return {
    bids: cumulative(book.bids.slice(0, most).filter(near)),
    asks: cumulative(book.asks.slice(0, most).filter(near)),
  };
}

/** The grouping steps offered for a tick size: 1, 10, 100, 1000 ticks. */
export function groupingSteps(tickSize: string): string[] {
  const tick = new Dec(tickSize);
  if (tick.lte(0)) return [];
  return [1, 10, 100, 1000].map((n) => tick.times(n).toFixed());
}
