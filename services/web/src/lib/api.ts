/**
 * The one HTTP client of the UI: relative URLs (same origin as the page), the session
 * cookie sent by the browser, the CSRF header echoed from the `cex_csrf` cookie on anything
 * but GET, and the API's Binance-shaped errors (`{"code", "msg"}`) raised as `ApiError` so
 * a page can show the exchange's own message.
 */

/** Query-string or form values; `undefined` entries are left out. */
export type Params = Record<string, string | number | boolean | undefined>;

/** An error answered by the API (or the network), with Binance's code and message. */
export class ApiError extends Error {
  constructor(
    /** HTTP status (0 when the request never reached the server). */
    readonly status: number,
    /** Binance error code, e.g. -2010; 0 when the body had none. */
    readonly code: number,
    /** The API's message, fit to show to the user. */
    readonly msg: string,
  ) {
    super(msg);
    this.name = "ApiError";
  }
}

/** The name of the cookie holding the CSRF token (readable by the page, by design). */
export const CSRF_COOKIE = "cex_csrf";
/** The header a cookie-authenticated non-GET request echoes the CSRF token in. */
export const CSRF_HEADER = "X-CSRF-Token";

/** The value of a cookie of this document, or undefined (never on the server). */
export function readCookie(name: string): string | undefined {
  if (typeof document === "undefined") return undefined;
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return undefined;
}

/** `?a=1&b=2` from params (undefined values skipped), or "" when none are left. */
export function queryString(params?: Params): string {
  if (!params) return "";
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined) search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Options of `apiFetch`: at most one of `form` and `json` as the body. */
export interface ApiRequest {
  method?: "GET" | "POST" | "PUT" | "DELETE";
  /** Sent in the query string. */
  query?: Params;
  /** Sent as `application/x-www-form-urlencoded` (the Binance endpoints' way). */
  form?: Params;
  /** Sent as JSON (the `/cex/v1` endpoints' way). */
  json?: unknown;
  signal?: AbortSignal;
}

/** Calls the API at `path` (e.g. `/api/v3/order`) and returns its JSON; throws ApiError. */
export async function apiFetch<T>(path: string, request: ApiRequest = {}): Promise<T> {
  const method = request.method ?? "GET";
  const headers: Record<string, string> = { Accept: "application/json" };
  let body: string | undefined;
  if (request.form) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    body = queryString(request.form).slice(1);
  } else if (request.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(request.json);
  }
  if (method !== "GET") {
    const csrf = readCookie(CSRF_COOKIE);
    if (csrf) headers[CSRF_HEADER] = csrf;
  }
  let response: Response;
  try {
    response = await fetch(path + queryString(request.query), {
      method,
      headers,
      body,
      credentials: "same-origin",
      signal: request.signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, 0, "The exchange cannot be reached: check your connection.");
  }
  const text = await response.text();
  const parsed = text ? safeJson(text) : undefined;
  if (!response.ok) throw errorOf(response.status, parsed, text);
  return parsed as T;
}

/** GET `path` with `query`. */
export function apiGet<T>(path: string, query?: Params, signal?: AbortSignal): Promise<T> {
  return apiFetch<T>(path, { query, signal });
}

/** POST a form body (Binance endpoints). */
export function apiPostForm<T>(path: string, form: Params): Promise<T> {
  return apiFetch<T>(path, { method: "POST", form });
}

/** POST a JSON body (`/cex/v1` endpoints). */
export function apiPostJson<T>(path: string, json: unknown = {}): Promise<T> {
  return apiFetch<T>(path, { method: "POST", json });
}

/** DELETE with the parameters in the query string (as Binance's DELETE /api/v3/order). */
export function apiDelete<T>(path: string, query?: Params): Promise<T> {
  return apiFetch<T>(path, { method: "DELETE", query });
}

/** The message to show for any error thrown by a query or mutation. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.msg;
  if (error instanceof Error) return error.message;
  return "Something went wrong.";
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function errorOf(status: number, body: unknown, text: string): ApiError {
  if (body && typeof body === "object") {
    const { code, msg, detail } = body as { code?: unknown; msg?: unknown; detail?: unknown };
    if (typeof msg === "string") return new ApiError(status, typeof code === "number" ? code : 0, msg);
    if (typeof detail === "string") return new ApiError(status, 0, detail);
  }
  const fallback = text.trim().slice(0, 200) || `The exchange answered HTTP ${status}.`;
  return new ApiError(status, 0, fallback);
}
