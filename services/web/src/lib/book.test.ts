import { describe, expect, it } from "vitest";
import {
  type BookSync,
  type DepthDiff,
  cumulative,
  depthLevels,
  emptySync,
  groupLevels,
  groupingSteps,
  onDiff,
  onSnapshot,
  sortedLevels,
} from "./book";

const snapshot = {
  lastUpdateId: 100,
  bids: [["99.00", "1.0"], ["98.00", "2.0"]] as [string, string][],
  asks: [["101.00", "1.5"], ["102.00", "3.0"]] as [string, string][],
};

function diff(U: number, u: number, b: [string, string][] = [], a: [string, string][] = []): DepthDiff {
  return { U, u, b, a };
}

function live(sync: BookSync) {
  if (sync.status !== "live") throw new Error(`expected a live book, got ${sync.status}`);
  return sync.book;
}

describe("the Binance local book procedure", () => {
  it("buffers diffs until the snapshot, drops the stale ones and applies the rest", () => {
    let sync = emptySync();
    sync = onDiff(sync, diff(95, 98, [["99.00", "9"]])).sync; // older than the snapshot
    sync = onDiff(sync, diff(99, 101, [["99.00", "4.0"]])).sync; // straddles lastUpdateId + 1
    sync = onDiff(sync, diff(102, 103, [], [["101.00", "0.5"]])).sync;
    expect(sync.status).toBe("buffering");
    const outcome = onSnapshot(sync, snapshot);
    expect(outcome.resync).toBe(false);
    const book = live(outcome.sync);
    expect(book.lastUpdateId).toBe(103);
    expect(book.bids.get("99.00")).toBe("4.0");
    expect(book.asks.get("101.00")).toBe("0.5");
  });

  it("drops a diff that is not newer than the book", () => {
    const { sync } = onSnapshot(emptySync(), snapshot);
    const outcome = onDiff(sync, diff(90, 100, [["99.00", "7"]]));
    expect(outcome.resync).toBe(false);
    expect(live(outcome.sync).bids.get("99.00")).toBe("1.0");
  });

  it("resyncs when the first diff starts after lastUpdateId + 1", () => {
    const { sync } = onSnapshot(emptySync(), snapshot);
    const outcome = onDiff(sync, diff(103, 104));
    expect(outcome.resync).toBe(true);
    expect(outcome.sync.status).toBe("buffering");
  });

  it("resyncs on a gap between two diffs (U ≠ previous u + 1)", () => {
    let { sync } = onSnapshot(emptySync(), snapshot);
    sync = onDiff(sync, diff(101, 102, [["97.00", "1"]])).sync;
    expect(live(sync).lastUpdateId).toBe(102);
    const gap = onDiff(sync, diff(104, 105));
    expect(gap.resync).toBe(true);
    // After a gap the following diffs buffer for the next snapshot.
    const buffered = onDiff(gap.sync, diff(106, 107));
    expect(buffered.sync).toEqual({ status: "buffering", buffered: [diff(106, 107)] });
  });

  it("asks for another snapshot when the snapshot is older than the buffered diffs reach", () => {
    let sync = emptySync();
    sync = onDiff(sync, diff(105, 106)).sync;
    const outcome = onSnapshot(sync, snapshot);
    expect(outcome.resync).toBe(true);
    expect(outcome.sync).toEqual({ status: "buffering", buffered: [diff(105, 106)] });
    const second = onSnapshot(outcome.sync, { ...snapshot, lastUpdateId: 105 });
    expect(second.resync).toBe(false);
    expect(live(second.sync).lastUpdateId).toBe(106);
  });

  it("removes a level whose quantity is zero, in any spelling", () => {
    let { sync } = onSnapshot(emptySync(), snapshot);
    sync = onDiff(sync, diff(101, 101, [["99.00", "0.00000000"]], [["102.00", "0"]])).sync;
    const book = live(sync);
    expect([...book.bids.keys()]).toEqual(["98.00"]);
    expect([...book.asks.keys()]).toEqual(["101.00"]);
  });

  it("sorts bids high to low and asks low to high by value, not by text", () => {
    const side = new Map([["9.50", "1"], ["10.00", "1"], ["100.00", "1"]]);
    expect(sortedLevels(side, "bids").map(([p]) => p)).toEqual(["100.00", "10.00", "9.50"]);
    expect(sortedLevels(side, "asks").map(([p]) => p)).toEqual(["9.50", "10.00", "100.00"]);
  });
});

describe("price grouping", () => {
  it("rounds bids down and asks up to the step and sums quantities exactly", () => {
    const bids: [string, string][] = [["100.09", "0.1"], ["100.01", "0.2"], ["99.99", "0.3"]];
    expect(groupLevels(bids, "0.1", "bids", 2)).toEqual([["100.00", "0.3"], ["99.90", "0.3"]]);
    const asks: [string, string][] = [["100.01", "0.1"], ["100.10", "0.2"], ["100.11", "0.7"]];
    expect(groupLevels(asks, "0.1", "asks", 2)).toEqual([["100.10", "0.3"], ["100.20", "0.7"]]);
  });

  it("stops after the buckets asked for", () => {
    const bids: [string, string][] = [["100.09", "0.1"], ["100.01", "0.2"], ["99.99", "0.3"], ["99.80", "1"]];
    expect(groupLevels(bids, "0.1", "bids", 2, 2)).toEqual([["100.00", "0.3"], ["99.90", "0.3"]]);
  });

  it("leaves the levels alone at the tick size", () => {
    const bids: [string, string][] = [["100.09", "0.1"], ["100.01", "0.2"]];
    expect(groupLevels(bids, "0.01", "bids", 2)).toEqual(bids);
  });

  it("offers 1, 10, 100 and 1000 ticks", () => {
    expect(groupingSteps("0.01")).toEqual(["0.01", "0.1", "1", "10"]);
  });

  it("accumulates depth without float drift", () => {
    const totals = cumulative([["1", "0.1"], ["2", "0.2"], ["3", "0.3"]]).map((l) => l.total);
    expect(totals).toEqual(["0.1", "0.3", "0.6"]);
  });
});

describe("depthLevels", () => {
  it("keeps levels near the mid and drops stray far ones", () => {
    const book = {
      lastUpdateId: 1,
      bids: [["100", "1"], ["99", "2"], ["10", "5"]] as [string, string][],
      asks: [["101", "1"], ["102", "3"], ["900", "5"]] as [string, string][],
    };
    const { bids, asks } = depthLevels(book);
    expect(bids.map((l) => [l.price, l.total])).toEqual([["100", "1"], ["99", "3"]]);
    expect(asks.map((l) => [l.price, l.total])).toEqual([["101", "1"], ["102", "4"]]);
  });

  it("shows both sides of a thin book whose spread is wider than the window", () => {
    const book = {
      lastUpdateId: 1,
      bids: [["1380", "0.5"], ["1118.53", "0.48"], ["1000.5", "0.9"]] as [string, string][],
      asks: [["2090", "1.5"]] as [string, string][],
    };
    const { bids, asks } = depthLevels(book);
    expect(bids.map((l) => l.total)).toEqual(["0.5", "0.98", "1.88"]);
    expect(asks.map((l) => l.total)).toEqual(["1.5"]);
  });

  it("takes every level of a one-sided book", () => {
    const book = { lastUpdateId: 1, bids: [["5", "1"], ["1", "1"]] as [string, string][], asks: [] };
    expect(depthLevels(book).bids.map((l) => l.total)).toEqual(["1", "2"]);
  });
});
