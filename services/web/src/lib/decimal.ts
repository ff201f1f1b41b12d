/**
 * Money in the browser: decimal strings in, decimal strings out, through decimal.js; never
 * `Number` arithmetic on prices or amounts (0.1 + 0.2 must be 0.3). Formatting follows the
 * market's precisions (the tickSize / stepSize of its filters).
 */
import Decimal from "decimal.js";

/** A decimal.js constructor with enough digits for any int64 of units at 18 decimals. */
export const Dec = Decimal.clone({ precision: 60, toExpNeg: -40, toExpPos: 60 });
/** A value accepted by the arithmetic helpers. */
export type DecimalLike = string | Decimal;

const DECIMAL_INPUT = /^\d+(\.\d*)?$|^\.\d+$/;

/** True when `text` is a plain non-negative decimal a user may type ("1", "0.5", ".5", "2."). */
export function isDecimalInput(text: string): boolean {
  return DECIMAL_INPUT.test(text.trim());
}

/** `value` as a decimal string without exponent (NaN-safe: throws on junk). */
export function toPlain(value: DecimalLike): string {
  return new Dec(value).toFixed();
}

/** a + b. */
export function add(a: DecimalLike, b: DecimalLike): string {
  return new Dec(a).plus(b).toFixed();
}

/** a − b. */
export function sub(a: DecimalLike, b: DecimalLike): string {
  return new Dec(a).minus(b).toFixed();
}

/** a × b. */
export function mul(a: DecimalLike, b: DecimalLike): string {
  return new Dec(a).times(b).toFixed();
}

/** a ÷ b (b ≠ 0), exact to 60 significant digits. */
export function div(a: DecimalLike, b: DecimalLike): string {
  return new Dec(a).dividedBy(b).toFixed();
}

/** -1, 0 or 1 as a is less than, equal to or greater than b. */
export function cmp(a: DecimalLike, b: DecimalLike): -1 | 0 | 1 {
  return new Dec(a).comparedTo(b) as -1 | 0 | 1;
}

/**
 * Orders two plain non-negative decimal strings ("100.5", "99.99") by value without
 * parsing them: integer digits by length then text, then the fraction. Exact, and fast
 * enough to sort a thousand book levels every 100 ms.
 */
export function compareDecimalStrings(a: string, b: string): -1 | 0 | 1 {
  const [ai = "", af = ""] = a.split(".");
  const [bi = "", bf = ""] = b.split(".");
  const aInt = ai.replace(/^0+/, "");
  const bInt = bi.replace(/^0+/, "");
  if (aInt.length !== bInt.length) return aInt.length < bInt.length ? -1 : 1;
  if (aInt !== bInt) return aInt < bInt ? -1 : 1;
  const width = Math.max(af.length, bf.length);
  const aFrac = af.padEnd(width, "0");
  const bFrac = bf.padEnd(width, "0");
  if (aFrac === bFrac) return 0;
  return aFrac < bFrac ? -1 : 1;
}

/** True when the value is zero ("0", "0.000"). */
export function isZero(a: DecimalLike): boolean {
  return new Dec(a).isZero();
}

/** Decimal places of a step such as a tickSize: "0.01000000" → 2, "1.00" → 0, "10" → 0. */
export function decimalsOf(step: string): number {
  const trimmed = trimZeros(step);
  const dot = trimmed.indexOf(".");
  return dot < 0 ? 0 : trimmed.length - dot - 1;
}

/** Drops trailing fractional zeros: "1.2300" → "1.23", "5.000" → "5", "100" → "100". */
export function trimZeros(text: string): string {
  if (!text.includes(".")) return text;
  return text.replace(/\.?0+$/, "");
}

/** Inserts thousands separators in the integer part: "1234567.5" → "1,234,567.5". */
export function groupThousands(text: string, separator = ","): string {
  const negative = text.startsWith("-");
  const body = negative ? text.slice(1) : text;
  const [int, frac] = body.split(".") as [string, string | undefined];
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, separator);
  return (negative ? "-" : "") + grouped + (frac !== undefined ? `.${frac}` : "");
}

/** How to format a decimal for display. */
export interface FormatOptions {
  /** Insert thousands separators (default true). */
  group?: boolean;
  /** Drop trailing fractional zeros (default false: columns stay aligned). */
  trim?: boolean;
  /** Rounding at the last place: "down" (default, never shows more than there is) or "half-up". */
  rounding?: "down" | "half-up" | "up";
}

const ROUNDING = {
  down: Decimal.ROUND_DOWN,
  "half-up": Decimal.ROUND_HALF_UP,
  up: Decimal.ROUND_UP,
} as const;

/** `value` with exactly `decimals` places (see FormatOptions), e.g. ("1234.5", 2) → "1,234.50". */
export function formatDecimal(value: DecimalLike, decimals: number, options: FormatOptions = {}): string {
  const fixed = new Dec(value).toFixed(decimals, ROUNDING[options.rounding ?? "down"]);
  const shown = options.trim ? trimZeros(fixed) : fixed;
  return options.group === false ? shown : groupThousands(shown);
}

/** `value` formatted on the grid of `step` (a tickSize or stepSize), e.g. price by tickSize. */
export function formatByStep(value: DecimalLike, step: string, options: FormatOptions = {}): string {
  return formatDecimal(value, decimalsOf(step), options);
}

/** The largest multiple of `step` not above `value` (both ≥ 0): quantities round down. */
export function floorToStep(value: DecimalLike, step: DecimalLike): string {
  const s = new Dec(step);
  return new Dec(value).dividedToIntegerBy(s).times(s).toFixed();
}

/** The smallest multiple of `step` not below `value`. */
export function ceilToStep(value: DecimalLike, step: DecimalLike): string {
  const s = new Dec(step);
  return new Dec(value).dividedBy(s).ceil().times(s).toFixed();
}

/** True when `value` − `base` is a whole number of `step`s (Binance's filter rule). */
export function onGrid(value: DecimalLike, step: DecimalLike, base: DecimalLike = "0"): boolean {
  if (new Dec(step).isZero()) return true;
  return new Dec(value).minus(base).modulo(step).isZero();
}

/** `part` as a percentage of `whole` (0 when whole is 0), as a decimal string. */
export function percentOf(part: DecimalLike, whole: DecimalLike): string {
  const w = new Dec(whole);
  return w.isZero() ? "0" : new Dec(part).dividedBy(w).times(100).toFixed();
}

/** The numbers a chart library needs for drawing only (never for money arithmetic). */
export function toChartNumber(value: string): number {
  return Number(value);
}
