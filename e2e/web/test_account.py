"""The account pages in a real browser: an API key created on the API keys page (secret shown
once) works unmodified in ccxt's `binance` class against the exchange, with the permissions
chosen, on the same account the browser trades; deleted on the page, it stops working."""

from __future__ import annotations

from decimal import Decimal

import ccxt.async_support as ccxt_async
import pytest
from playwright.async_api import expect

from e2e.api.clients import ccxt_binance
from e2e.api.conftest import Trader

from .conftest import NewContext, Web, eventually, faucet, rows, sign_in


async def test_an_api_key_made_in_the_browser_trades_through_ccxt(
    web: Web, new_context: NewContext
) -> None:
    page = await (await new_context()).new_page()
    await sign_in(page, web, "web-keys@example.com")
    await faucet(page, "USDT", "500")
    await page.goto("/account/api-keys")
    panel = page.get_by_role("region", name="API keys")
    await panel.get_by_label("Label").fill("ccxt bot")
    await panel.get_by_role("checkbox", name="Read").check()
    await panel.get_by_role("checkbox", name="Trade").check()
    await panel.get_by_role("checkbox", name="Withdraw").uncheck()
    await panel.get_by_role("button", name="Create API key").click()

    shown = page.get_by_role("dialog", name="API key created")
    api_key = await shown.get_by_label("API key", exact=True).input_value()
    secret = await shown.get_by_label("Secret key").input_value()
    assert len(api_key) >= 32
    assert len(secret) >= 32
    await shown.get_by_role("button", name="I have saved it").click()
    listed = await eventually(lambda: rows(page, "API keys"), bool, "the new key in the list")
    assert [(cells[0].split()[:2], cells[1], cells[2]) for cells in listed] == [
        (["ccxt", "bot"], api_key, "Read, Trade")
    ], listed
    # The secret was shown once: nowhere on the page any more.
    await expect(page.get_by_text(secret)).to_have_count(0)

    client = ccxt_binance(web.exchange.url, Trader(0, "web-keys@example.com", api_key, secret))
    try:
        balance = await client.fetch_balance()
        assert Decimal(str(balance["USDT"]["free"])) == Decimal("500")
        order = await client.create_order("ETH/USDT", "limit", "buy", 0.1, 1000)
        assert order["status"] == "open"
        # The browser shows the order ccxt placed: same account.
        await page.goto("/trade/ETHUSDT")
        await eventually(
            lambda: rows(page, "Open orders"),
            lambda r: [(row[1], row[3], row[5]) for row in r] == [("Buy", "1,000.00", "0.1000")],
            "ccxt's order on the trading screen",
        )

        await page.goto("/account/api-keys")
        panel = page.get_by_role("region", name="API keys")
        await (
            panel.get_by_role("row")
            .filter(has_text="ccxt bot")
            .get_by_role("button", name="Delete")
            .click()
        )
        confirm = page.get_by_role("dialog", name="Delete API key?")
        await confirm.get_by_role("button", name="Delete").click()
        await expect(panel.get_by_text("No API keys yet.")).to_be_visible()
    finally:
        await client.close()
    # A fresh client: one that has authenticated before takes -2015 for Binance's temporary
    # ban (DDoSProtection).
    client = ccxt_binance(web.exchange.url, Trader(0, "web-keys@example.com", api_key, secret))
    try:
        with pytest.raises(ccxt_async.AuthenticationError, match="-2015"):
            await client.fetch_balance()
    finally:
        await client.close()
