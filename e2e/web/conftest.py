"""The web UI in a real browser on the real exchange: Debian's chromium, driven by Playwright
through `executable_path` (no browser is ever downloaded), against the whole exchange of the
public API's end-to-end tests (`e2e/api/conftest.py`: every service a real process on the real
Kafka, Postgres and Redis) plus a WebSocket gateway and the web UI's production server
(`server.mjs` of a `next build`), both on free loopback ports.

The web app is built in a copy of `services/web` under `.cex/web-e2e` (rebuilt only when its
sources changed), so a test run never rebuilds what `make up` serves. Screenshots go to
`.cex/artifacts/web/`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from tests.fixtures import REPO

from cex.stack.settings import StackSettings
from cex.stack.web import WebBuild, app_copy
from e2e.api.conftest import Exchange, free_port, whole_exchange

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / ".cex" / "artifacts" / "web"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
#: How long the UI may take to show what the exchange did (a loaded 2-core machine).
LIVE_MS = 20_000


@dataclass(frozen=True)
class Web:
    """The web UI's server for `exchange`: its URL, the exchange behind it, its log."""

    url: str
    exchange: Exchange
    log: Path


@pytest.fixture(scope="session")
async def exchange(
    stack: StackSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Exchange]:
    """A whole exchange of the web UI's own: its tests check whole sides of the book and
    the latest trades, which the API tests' orders would share."""
    async with whole_exchange(stack, tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="session")
async def web(exchange: Exchange) -> AsyncIterator[Web]:
    gateway = (await exchange.gateway("web-gateway")).replace("ws://", "http://")
    build = WebBuild(app_copy(REPO / ".cex" / "web-e2e"))
    await asyncio.to_thread(build.ensure, REPO / ".cex" / "logs" / "web-e2e-build.log")
    port = free_port()
    command, env = build.server("127.0.0.1", port, exchange.url, gateway)
    log = exchange.log_dir / "web.log"
    with log.open("ab") as out:
        server = await asyncio.create_subprocess_exec(
            *command, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(120):
            while True:
                assert server.returncode is None, f"web server exited; see {log}"
                try:
                    async with http.get(f"{url}/healthz") as probe:
                        if probe.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.2)
        yield Web(url, exchange, log)
    finally:
        server.terminate()
        try:
            async with asyncio.timeout(20):
                await server.wait()
        except TimeoutError:
            server.kill()
            await server.wait()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # --no-sandbox: chromium's sandbox needs user namespaces, absent when run as root.
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        yield chromium
        await chromium.close()


NewContext = Callable[..., Awaitable[BrowserContext]]


@pytest.fixture
async def new_context(browser: Browser, web: Web) -> AsyncIterator[NewContext]:
    """Browser contexts (one per trader: own cookies) at `web.url`, closed after the test."""
    made: list[BrowserContext] = []

    async def make(viewport: dict[str, int] | None = None) -> BrowserContext:
        context = await browser.new_context(
            base_url=web.url,
            viewport=viewport or DESKTOP,  # type: ignore[arg-type]
        )
        context.set_default_timeout(LIVE_MS)
        made.append(context)
        return context

    yield make
    for context in made:
        await context.close()


async def otp_code(outbox: Path, email: str, after: int) -> str:
    """The newest code mailed to `email` among the outbox's lines past the first `after`."""
    async with asyncio.timeout(30):
        while True:
            lines = await asyncio.to_thread(read_lines, outbox)
            codes = [json.loads(line) for line in lines[after:]]
            mine = [c["code"] for c in codes if c["email"] == email]
            if mine:
                return str(mine[-1])
            await asyncio.sleep(0.1)


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def outbox_lines(outbox: Path) -> int:
    return len(read_lines(outbox))


async def sign_in(page: Page, web: Web, email: str) -> None:
    """Sign in through the login page with the code the exchange "mailed"."""
    await page.goto("/login")
    sent_before = outbox_lines(web.exchange.otp_outbox)
    await page.get_by_label("Email").fill(email)
    await page.get_by_role("button", name="Send code").click()
    code = await otp_code(web.exchange.otp_outbox, email, sent_before)
    await page.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).not_to_have_url(re.compile(r"/login"))


async def faucet(page: Page, asset: str, amount: str) -> None:
    """Free funds for the signed-in user, through the dev faucet endpoint with the session's
    cookie and CSRF header (as the account page does)."""
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    response = await page.request.post(
        "/cex/v1/faucet",
        data={"asset": asset, "amount": amount},
        headers={"X-CSRF-Token": cookies["cex_csrf"]},
    )
    assert response.ok, await response.text()


async def deposit(page: Page, asset: str, amount: str) -> None:
    """Free funds through the account page's faucet form."""
    await page.goto("/account")
    form = page.get_by_role("region", name="Deposit")
    await form.get_by_label("Asset").fill(asset)
    await form.get_by_label("Amount").fill(amount)
    await form.get_by_role("button", name="Deposit").click()
    await expect(form.get_by_text(re.compile(rf"Deposited [\d,.]+ {asset}\."))).to_be_visible()


async def place(page: Page, side: str, *, amount: str, price: str | None = None) -> None:
    """A limit order through the trading screen's order form (`side`: "Buy" or "Sell");
    `price` None keeps the price already in the form."""
    form = page.get_by_role("region", name="Place order")
    await form.get_by_role("group", name="Side").get_by_role("button", name=side).click()
    if price is not None:
        await form.get_by_role("textbox", name="Price", exact=True).fill(price)
    await form.get_by_role("textbox", name="Amount", exact=True).fill(amount)
    await form.get_by_role("button", name=re.compile(rf"^{side} [A-Z]+$")).click()


async def rows(page: Page, region: str) -> list[list[str]]:
    """The cells' texts of every body row of the table in the named region."""
    cells: list[list[str]] = (
        await page.get_by_role("region", name=region)
        .locator("tbody tr")
        .evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")
    )
    return cells


async def book_side(page: Page, side: str) -> list[tuple[Decimal, Decimal]]:
    """(price, amount) of each level of the order book's "Asks" or "Bids", best first."""
    levels = (
        await page.get_by_role("region", name="Order book")
        .get_by_role("rowgroup", name=side)
        .locator("tr")
        .evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.innerText))")
    )
    parsed = [(decimal_in(price), decimal_in(amount)) for price, amount, *_ in levels]
    return parsed[::-1] if side == "Asks" else parsed  # asks are drawn highest first


async def balances(page: Page) -> dict[str, tuple[Decimal, Decimal]]:
    """Asset → (available, in orders) from the trading screen's "Balances"."""
    found = {}
    for asset, available, locked in await rows(page, "Balances"):
        found[asset] = (decimal_in(available), decimal_in(locked))
    return found


T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], holds: Callable[[T], bool], what: str) -> T:
    """Poll `probe` until `holds`; fail with the last value seen after LIVE_MS."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIVE_MS / 1000
    while True:
        seen = await probe()
        if holds(seen):
            return seen
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not seen within {LIVE_MS} ms; last seen {seen!r}")
        await asyncio.sleep(0.2)


def decimal_in(text: str) -> Decimal:
    """The one decimal number in `text` (digits with optional grouping commas)."""
    (number,) = re.findall(r"\d[\d,]*(?:\.\d+)?", text)
    return Decimal(number.replace(",", ""))


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
