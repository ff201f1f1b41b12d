"""``cex bench web``: what the trading page costs a browser.

- ``first_load_js_bytes`` (and ``…_gzip_bytes``): the JavaScript a browser loads before the
  trading page (``/trade/[symbol]``) runs, read from the production build's manifests (the
  root main files of ``build-manifest.json`` plus the entry chunks of the app's layout and of
  the page in its client reference manifest; the legacy polyfills, never loaded by a modern
  browser, left out). The build is the one ``make up`` serves (``services/web/.next``).
- In headless Chromium against the running local stack (``make up``; its ``web`` endpoint),
  ``runs`` fresh page loads of ``/trade/<symbol>`` after one uncounted warm-up load (a new
  browser context each: cold HTTP cache), each giving ``fcp_ms`` (first contentful paint),
  ``book_rows_ms`` (navigation → the order book region shows price levels) and
  ``book_live_ms`` (navigation → the book shows an order placed *after* the navigation
  began, i.e. its snapshot and live diffs are applied). For the last one the bench keeps
  adding a small bid at the market's best bid price every ``marker_interval_s`` through the
  public API (a dev user signed in with the stack's OTP outbox and funded by the faucet);
  the page records, with a MutationObserver, when each amount of that level first appears.
  Its markers are cancelled at the end.

Prints p50/p95 of each timing (``runs`` page loads) and the goal's verdict
(``book_live_p95_ms`` ≤ 1,500).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import time
import uuid
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import aiohttp

from cex.stack.settings import StackSettings
from cex.stack.web import WEB_DIR, WebBuild

GOAL_BOOK_LIVE_MS = 1500
CHROMIUM = "/usr/bin/chromium"

# Records, from before the page's own scripts run, when each (price, amount) of the order
# book's best bid is first drawn, and when the book first shows any level.
_RECORDER = """
(() => {
  const seen = {};
  window.__cexBook = { rowsAt: null, seen };
  const scan = () => {
    const book = [...document.querySelectorAll("section")].find(
      (s) => s.querySelector("h2")?.textContent?.trim() === "Order book");
    const bids = book?.querySelector('tbody[aria-label="Bids"]');
    const rows = book ? book.querySelectorAll('button[aria-label$="use this price"]') : [];
    const book_ = window.__cexBook;
    if (rows.length && book_.rowsAt === null) book_.rowsAt = performance.now();
    const best = bids?.querySelector("tr");
    if (!best) return;
    const label = best.querySelector("button")?.getAttribute("aria-label") ?? "";
    const key = label.split(" ")[1] + " " + (best.cells[1]?.textContent ?? "");
    if (!(key in seen)) seen[key] = performance.now();
  };
  new MutationObserver(scan).observe(document, {
    subtree: true, childList: true, characterData: true });
})();
"""


def run(symbol: str, runs: int, marker_interval_s: float) -> dict[str, Any]:
    return asyncio.run(_run(symbol, runs, marker_interval_s))


def describe(result: dict[str, Any]) -> str:
    return (
        f"trading page: {result['first_load_js_bytes'] / 1024:,.0f} KiB first-load JS "
        f"({result['first_load_js_gzip_bytes'] / 1024:,.0f} KiB gzip); over {result['runs']} "
        f"loads FCP p50 {result['fcp_p50_ms']:.0f} ms, book rows p50 "
        f"{result['book_rows_p50_ms']:.0f} ms, book live p50 {result['book_live_p50_ms']:.0f} ms "
        f"/ p95 {result['book_live_p95_ms']:.0f} ms (goal ≤ {GOAL_BOOK_LIVE_MS} ms: "
        f"{'met' if result['goal_met'] else 'not met'})"
    )


def first_load_js(app_dir: Path = WEB_DIR) -> dict[str, int]:
    """Bytes (raw and gzip) of the JavaScript the trading page loads first."""
    next_dir = app_dir / ".next"
    build = json.loads((next_dir / "build-manifest.json").read_text())
    files = list(build["rootMainFiles"])
    manifest = (
        next_dir / "server" / "app" / "trade" / "[symbol]" / "page_client-reference-manifest.js"
    )
    text = manifest.read_text()
    rsc = json.loads(text[text.index("= {") + 2 :].rstrip().rstrip(";"))
    for entry, chunks in rsc["entryJSFiles"].items():
        if entry.endswith(("/app/layout", "/app/trade/[symbol]/page")):
            files += chunks
    unique = sorted(set(files))
    raw = [(next_dir / f).read_bytes() for f in unique]
    return {
        "first_load_js_files": len(unique),
        "first_load_js_bytes": sum(len(b) for b in raw),
        "first_load_js_gzip_bytes": sum(len(gzip.compress(b, 9)) for b in raw),
    }


def _percentiles(values: list[float], name: str) -> dict[str, float]:
    ordered = sorted(values)
    n = len(ordered)
    return {
        f"{name}_p50_ms": round(ordered[n // 2], 1),
        f"{name}_p95_ms": round(ordered[min(n - 1, int(n * 0.95))], 1),
    }


class _Trader:
    """A dev user of the stack's public API, signed in with a code from the OTP outbox."""

    def __init__(self, http: aiohttp.ClientSession, api: str, outbox: Path) -> None:
        self.http, self.api, self.outbox = http, api, outbox
        self.headers: dict[str, str] = {}

    async def sign_in(self) -> None:
        email = f"bench-web-{uuid.uuid4().hex[:8]}@example.com"
        async with self.http.post(f"{self.api}/cex/v1/auth/otp", json={"email": email}) as r:
            r.raise_for_status()
        code = None
        for _ in range(100):
            lines = self.outbox.read_text().splitlines() if self.outbox.exists() else []
            codes = [json.loads(line) for line in lines]
            code = next((c["code"] for c in reversed(codes) if c["email"] == email), None)
            if code:
                break
            await asyncio.sleep(0.1)
        if code is None:
            raise RuntimeError(f"no code for {email} in {self.outbox}")
        body = {"email": email, "code": code}
        async with self.http.post(f"{self.api}/cex/v1/auth/verify", json=body) as r:
            r.raise_for_status()
            self.headers = {"Authorization": f"Bearer {(await r.json())['token']}"}

    async def call(self, method: str, path: str, **params: str) -> Any:
        async with self.http.request(
            method, f"{self.api}{path}", params=params, headers=self.headers
        ) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(f"{method} {path} {params}: {r.status} {body}")
            return body

    async def faucet(self, asset: str, amount: str) -> None:
        async with self.http.post(
            f"{self.api}/cex/v1/faucet", json={"asset": asset, "amount": amount},
            headers=self.headers,
        ) as r:  # fmt: skip
            r.raise_for_status()


async def _run(symbol: str, runs: int, marker_interval_s: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    settings = StackSettings()
    if not settings.endpoints_file.exists():
        raise RuntimeError("the local stack is not up: run `make up` first")
    endpoints = json.loads(settings.endpoints_file.read_text())
    if "web" not in endpoints:
        raise RuntimeError("the local stack has no web UI: run `make up` again")
    web, api = endpoints["web"], endpoints["api"]
    # What the server serves is measured; `build_current` says whether services/web changed
    # since (`make up` rebuilds it).
    current = WebBuild().is_current()
    result: dict[str, Any] = {
        "symbol": symbol, "runs": runs, "build_current": current, **first_load_js()
    }  # fmt: skip

    async with aiohttp.ClientSession() as http:
        trader = _Trader(http, api, settings.root / "otp.jsonl")
        await trader.sign_in()
        info = await trader.call("GET", "/api/v3/exchangeInfo", symbol=symbol)
        filters = {f["filterType"]: f for f in info["symbols"][0]["filters"]}
        quote = info["symbols"][0]["quoteAsset"]
        tick = Decimal(filters["PRICE_FILTER"]["tickSize"])
        step = Decimal(filters["LOT_SIZE"]["stepSize"])
        depth = await trader.call("GET", "/api/v3/depth", symbol=symbol, limit="5")
        if depth["bids"]:
            price = Decimal(depth["bids"][0][0])
        elif depth["asks"]:  # no bids: a level well below the best ask becomes the best bid
            price = (Decimal(depth["asks"][0][0]) / 2 / tick).to_integral_value(ROUND_FLOOR) * tick
        else:
            price = 1000 * tick
        min_notional = Decimal(filters.get("NOTIONAL", {}).get("minNotional", "0"))
        lot = max(step, (min_notional * Decimal("1.1") / price / step).to_integral_value(
            ROUND_CEILING) * step)  # fmt: skip
        await trader.faucet(quote, str((price * lot * 2000).quantize(Decimal(1), ROUND_CEILING)))

        markers: list[float] = []  # wall-clock ms at which each accepted marker was sent

        async def place_markers() -> None:
            while True:
                sent = time.time() * 1000
                await trader.call("POST", "/api/v3/order", symbol=symbol, side="BUY",
                                  type="LIMIT", timeInForce="GTC", price=str(price),
                                  quantity=str(lot), newOrderRespType="ACK")  # fmt: skip
                markers.append(sent)
                await asyncio.sleep(marker_interval_s)

        base_qty = Decimal(next((q for p, q in depth["bids"] if Decimal(p) == price), "0"))
        samples: dict[str, list[float]] = {"fcp": [], "book_rows": [], "book_live": []}
        marker_task = asyncio.create_task(place_markers())
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox"]
                )
                # One load first, not counted: the server's first render of the route (and
                # its cold caches) is a deploy-time cost, not what each visitor waits for.
                warmup = await browser.new_page()
                await warmup.goto(f"{web}/trade/{symbol}", wait_until="load")
                await warmup.close()
                for _ in range(runs):
                    context = await browser.new_context(viewport={"width": 1440, "height": 900})
                    await context.add_init_script(_RECORDER)
                    page = await context.new_page()
                    await page.goto(f"{web}/trade/{symbol}", wait_until="load")
                    live = await _book_live_ms(page, price, base_qty, lot, markers)
                    fcp, rows_at = await page.evaluate(
                        "[performance.getEntriesByName('first-contentful-paint')[0]?.startTime,"
                        " window.__cexBook.rowsAt]"
                    )
                    samples["fcp"].append(fcp)
                    samples["book_rows"].append(rows_at)
                    samples["book_live"].append(live)
                    await context.close()
                await browser.close()
        finally:
            marker_task.cancel()
            await asyncio.gather(marker_task, return_exceptions=True)
            await trader.call("DELETE", "/api/v3/openOrders", symbol=symbol)

    for name, values in samples.items():
        result |= _percentiles(values, name)
    result["book_live_goal_ms"] = GOAL_BOOK_LIVE_MS
    result["goal_met"] = result["book_live_p95_ms"] <= GOAL_BOOK_LIVE_MS
    return result


async def _book_live_ms(
    page: Any, price: Decimal, base_qty: Decimal, lot: Decimal, markers: list[float]
) -> float:
    """Milliseconds from navigation until the page's best bid shows the amount made by the
    first marker sent after the navigation began (markers only ever add to that level)."""
    origin = await page.evaluate("performance.timeOrigin")
    deadline = time.monotonic() + 30
    while True:
        first = next((i for i, sent in enumerate(markers) if sent >= origin), None)
        seen: dict[str, float] = await page.evaluate("window.__cexBook.seen")
        if first is not None:
            wanted = base_qty + lot * (first + 1)
            levels = [(key.partition(" "), at) for key, at in seen.items()]
            shown = [at for (p, _, q), at in levels if _number(p) == price and _number(q) >= wanted]
            if shown:
                return float(min(shown))
        if time.monotonic() > deadline:
            raise RuntimeError(f"the book never showed the bid at {price} growing: {seen}")
        await asyncio.sleep(0.1)


def _number(text: str) -> Decimal:
    match = re.search(r"\d[\d,]*(?:\.\d+)?", text)
    return Decimal(match.group().replace(",", "")) if match else Decimal(-1)
