/**
 * The markets list's pure rules: a 24 h ticker per market (seeded from REST
 * `/api/v3/ticker/24hr`, then replaced by the gateway's `!miniTicker@arr` entries), the
 * 24 h change as a signed decimal and percentage, and the search filter. Money stays in
 * decimal strings; the percentage is computed with the decimal library, never `Number`.
 */
import { Dec, cmp, formatByStep, formatDecimal, isZero, sub } from "./decimal";

/** The figures one row shows, as decimal strings. */
export interface Ticker {
  symbol: string;
  /** Last traded price (the previous close when nothing traded in 24 h). */
  lastPrice: string;
  /** Price 24 h ago ("0…" when nothing traded in the window). */
  openPrice: string;
  /** Base asset volume over 24 h. */
  volume: string;
  /** Quote asset volume over 24 h. */
  quoteVolume: string;
  /** Event or close time of these figures, ms (an older update never replaces a newer). */
  time: number;
}

/** `GET /api/v3/ticker/24hr` entry (FULL or MINI; the fields the list uses). */
export interface RestTicker {
  symbol: string;
  lastPrice: string;
  openPrice: string;
  volume: string;
  quoteVolume: string;
  closeTime: number;
}

/** `24hrMiniTicker` event of `!miniTicker@arr`. */
export interface MiniTicker {
  e: "24hrMiniTicker";
  E: number;
  s: string;
  c: string;
  o: string;
  h: string;
  l: string;
  v: string;
  q: string;
}

/** Tickers by symbol. */
export type TickerMap = Record<string, Ticker>;

/** The map of a REST answer. */
export function tickersFromRest(rows: RestTicker[]): TickerMap {
  const out: TickerMap = {};
  for (const row of rows) {
    out[row.symbol] = {
      symbol: row.symbol,
      lastPrice: row.lastPrice,
      openPrice: row.openPrice,
      volume: row.volume,
      quoteVolume: row.quoteVolume,
      time: row.closeTime,
    };
  }
  return out;
}

function isMiniTicker(value: unknown): value is MiniTicker {
  if (!value || typeof value !== "object") return false;
  const m = value as Partial<MiniTicker>;
  return (
    typeof m.s === "string" &&
    typeof m.c === "string" &&
    typeof m.o === "string" &&
    typeof m.v === "string" &&
    typeof m.q === "string" &&
    typeof m.E === "number"
  );
}

/**
 * `current` with the stream's entries applied (a payload of `!miniTicker@arr` is an array
 * of the tickers that changed). Returns `current` itself when nothing changed, so React
 * skips the render; entries older than what is shown, or malformed, are ignored.
 */
export function applyMiniTickers(current: TickerMap, payload: unknown): TickerMap {
  if (!Array.isArray(payload)) return current;
  let next: TickerMap | null = null;
  for (const item of payload) {
    if (!isMiniTicker(item)) continue;
    const shown = (next ?? current)[item.s];
    if (shown && shown.time > item.E) continue;
    next ??= { ...current };
    next[item.s] = { symbol: item.s, lastPrice: item.c, openPrice: item.o, volume: item.v, quoteVolume: item.q, time: item.E };
  }
  return next ?? current;
}

/** Which way the price went over 24 h. */
export type Direction = "up" | "down" | "flat";

/** The 24 h change of a ticker. */
export interface Change {
  direction: Direction;
  /** last − open, a decimal string ("0" when nothing traded). */
  amount: string;
  /** The change in percent with two decimals and an explicit sign: "+1.25%", "-0.40%", "0.00%". */
  percentText: string;
}

/**
 * The 24 h change from the open and last prices: (last − open) / open × 100, rounded half
 * up to 2 places. Nothing traded in the window (open 0) is no change.
 */
export function change24h(openPrice: string, lastPrice: string): Change {
  if (isZero(openPrice)) return { direction: "flat", amount: "0", percentText: "0.00%" };
  const amount = sub(lastPrice, openPrice);
  const percent = new Dec(amount).dividedBy(openPrice).times(100);
  const rounded = formatDecimal(percent.abs(), 2, { rounding: "half-up", group: false });
  if (rounded === "0.00") return { direction: "flat", amount, percentText: "0.00%" };
  const up = cmp(amount, "0") > 0;
  return { direction: up ? "up" : "down", amount, percentText: `${up ? "+" : "-"}${rounded}%` };
}

/** What the search box matches against. */
export interface Searchable {
  symbol: string;
  baseAsset: string;
  quoteAsset: string;
}

/**
 * The markets matching `query`, case-insensitively, by symbol ("btcu"), by asset ("eth"),
 * or as a pair written with a separator ("BTC/USDT", "btc-usdt", "btc usdt"). An empty
 * query keeps everything. Order is kept.
 */
export function filterMarkets<T extends Searchable>(markets: T[], query: string): T[] {
  const words = query.trim().toUpperCase().split(/[\s/\-_]+/).filter(Boolean);
  if (words.length === 0) return markets;
  const joined = words.join("");
  return markets.filter((m) => {
    if (m.symbol.includes(joined)) return true;
    if (words.length === 1) return m.baseAsset.startsWith(joined) || m.quoteAsset.startsWith(joined);
    return m.baseAsset.startsWith(words[0]!) && m.quoteAsset.startsWith(words[1]!);
  });
}

/** A price shown on the market's tick grid ("—" when there is none yet). */
export function formatPrice(value: string | undefined, tickSize: string): string {
  if (value === undefined || value === "") return "—";
  return formatByStep(value, tickSize);
}

/** A volume shown on the market's lot grid ("—" when there is none yet). */
export function formatVolume(value: string | undefined, stepSize: string): string {
  if (value === undefined || value === "") return "—";
  return formatByStep(value, stepSize);
}

/**
 * `incoming` merged over `current`, keeping for each market whichever figures are newer:
 * a REST reload that started before a stream update must not undo it.
 */
export function mergeNewer(current: TickerMap | undefined, incoming: TickerMap): TickerMap {
  if (!current) return incoming;
  const out: TickerMap = { ...current };
  for (const [symbol, ticker] of Object.entries(incoming)) {
    const shown = out[symbol];
    if (!shown || shown.time <= ticker.time) out[symbol] = ticker;
  }
  return out;
}

/** The last price to show: none for a market that never traded (the API says 0). */
export function lastPriceOf(ticker: Pick<Ticker, "lastPrice"> | undefined): string | undefined {
  return ticker && !isZero(ticker.lastPrice) ? ticker.lastPrice : undefined;
}
