/**
 * The account pages' pure rules: checks of what a user types before it is sent (the API
 * checks again and its message is shown if it refuses), the safe return path after
 * sign-in, and balance rows with their totals. Amounts stay decimal strings.
 */
import { add, decimalsOf, formatDecimal, isDecimalInput, isZero } from "./decimal";

/** Assets and their precision (decimal places), from the markets' base/quote precisions. */
export function assetPrecisions(
  markets: Array<{ baseAsset: string; quoteAsset: string; baseAssetPrecision: number; quoteAssetPrecision: number }>,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of markets) {
    out.set(m.baseAsset, Math.max(out.get(m.baseAsset) ?? 0, m.baseAssetPrecision));
    out.set(m.quoteAsset, Math.max(out.get(m.quoteAsset) ?? 0, m.quoteAssetPrecision));
  }
  return new Map([...out.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

/** An asset code as the API wants it (trimmed, upper case), or an error message. */
export function checkAsset(text: string, known?: ReadonlyMap<string, number>): { asset: string } | { error: string } {
  const asset = text.trim().toUpperCase();
  if (asset === "") return { error: "Enter an asset, e.g. USDT." };
  if (!/^[A-Z0-9]{1,16}$/.test(asset)) return { error: "An asset is 1 to 16 letters or digits, e.g. USDT." };
  if (known && known.size > 0 && !known.has(asset)) return { error: `${asset} is not traded on this exchange.` };
  return { asset };
}

/**
 * A positive amount with at most `decimals` places (the asset's precision, when known),
 * or an error message naming what is wrong. Never converts to a float.
 */
export function checkAmount(text: string, decimals?: number): { amount: string } | { error: string } {
  const amount = text.trim();
  if (amount === "") return { error: "Enter an amount." };
  if (!isDecimalInput(amount)) return { error: "The amount must be a number like 12.5." };
  if (isZero(amount)) return { error: "The amount must be above zero." };
  if (decimals !== undefined && decimalsOf(amount) > decimals) {
    return { error: decimals === 0 ? "The amount must be a whole number." : `At most ${decimals} decimal places.` };
  }
  return { amount };
}

/** A withdrawal address as the API accepts it (1 to 256 printable characters, no spaces). */
export function checkAddress(text: string): { address: string } | { error: string } {
  const address = text.trim();
  if (address === "") return { error: "Enter the destination address." };
  if (address.length > 256) return { error: "An address is at most 256 characters." };
  if (!/^[\x21-\x7e]+$/.test(address)) return { error: "An address has printable characters only, no spaces." };
  return { address };
}

/** The permissions an API key may have, in the API's order. */
export const PERMISSIONS = ["read", "trade", "withdraw"] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** What the API key form holds. */
export interface KeyDraft {
  label: string;
  permissions: Permission[];
  type: "HMAC" | "ED25519";
  publicKey: string;
}

/** The body of `POST /cex/v1/api-keys`. */
export interface KeyRequest {
  label: string;
  permissions: Permission[];
  type: "HMAC" | "ED25519";
  publicKey?: string;
}

/** The API key request of a draft, or the first problem with it. */
export function checkKeyDraft(draft: KeyDraft): { request: KeyRequest } | { error: string } {
  const label = draft.label.trim();
  if (label.length > 64) return { error: "A label is at most 64 characters." };
  const permissions = PERMISSIONS.filter((p) => draft.permissions.includes(p));
  if (permissions.length === 0) return { error: "Choose at least one permission." };
  if (draft.type === "HMAC") return { request: { label, permissions, type: "HMAC" } };
  const publicKey = draft.publicKey.trim();
  if (!/^-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----$/.test(publicKey)) {
    return { error: "Paste the Ed25519 public key in PEM form (-----BEGIN PUBLIC KEY----- …)." };
  }
  return { request: { label, permissions, type: "ED25519", publicKey } };
}

/**
 * Where to go after signing in: `next` when it is a path of this site, else "/". Refuses
 * other origins ("//evil.example", "https://…", "/\\evil") so the link cannot be used to
 * send someone elsewhere, and never returns to the login page itself.
 */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.includes("\\")) return "/";
  if (/[\u0000-\u001f]/.test(next)) return "/";
  if (next === "/login" || next.startsWith("/login?") || next.startsWith("/login/")) return "/";
  return next;
}

/** A balance as the API gives it. */
export interface BalanceIn {
  asset: string;
  free: string;
  locked: string;
}

/** A balance row: formatted free, locked and total (free + locked, exact). */
export interface BalanceRow {
  asset: string;
  free: string;
  locked: string;
  total: string;
}

/**
 * Rows of the balances table, by asset, amounts on the asset's precision (the API's own
 * strings are kept when the precision is unknown); zero balances dropped unless `keepZero`.
 */
export function balanceRows(balances: BalanceIn[], precisions: ReadonlyMap<string, number>, keepZero = false): BalanceRow[] {
  const show = (value: string, asset: string) => {
    const decimals = precisions.get(asset);
    return decimals === undefined ? value : formatDecimal(value, decimals);
  };
  return balances
    .filter((b) => keepZero || !isZero(b.free) || !isZero(b.locked))
    .map((b) => ({ asset: b.asset, free: show(b.free, b.asset), locked: show(b.locked, b.asset), total: show(add(b.free, b.locked), b.asset) }))
    .sort((a, b) => a.asset.localeCompare(b.asset));
}

/** An amount for a sentence: grouped, trailing zeros dropped when the precision is known. */
export function showAmount(amount: string, decimals: number | undefined): string {
  return decimals === undefined ? amount : formatDecimal(amount, decimals, { trim: true });
}
