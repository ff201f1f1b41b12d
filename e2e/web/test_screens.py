"""The trading screen at a desktop's and a phone's width, signed in with live data: every
panel is there and readable at both widths, the page never scrolls sideways on the phone, and
a screenshot of each is written as a test artifact (`.cex/artifacts/web/trading-<width>.png`;
docs/trading-screen.png in the README is a copy of the desktop one)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.async_api import expect

from .conftest import (
    DESKTOP,
    PHONE,
    NewContext,
    Web,
    balances,
    book_side,
    eventually,
    faucet,
    place,
    screenshot_path,
    sign_in,
)

PANELS = ("Price chart", "Order book", "Place order", "Recent trades", "Open orders",
          "Order history", "Trade history", "Balances")  # fmt: skip


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_trading_screen_at_desktop_and_phone_widths(
    web: Web, new_context: NewContext, viewport: dict[str, int]
) -> None:
    width = viewport["width"]
    page = await (await new_context(viewport)).new_page()
    await sign_in(page, web, f"web-screen-{width}@example.com")
    await faucet(page, "USDT", "2000")
    await faucet(page, "ETH", "3")
    await page.goto("/trade/ETHUSDT")
    price = Decimal(2000 + width % 100)  # a level of this test's own
    await place(page, "Sell", price=str(price), amount="1.5")
    ask = (price, Decimal("1.5"))
    await eventually(lambda: book_side(page, "Asks"), lambda asks: ask in asks, "the ask")
    locked = (Decimal("1.5"), Decimal("1.5"))
    await eventually(lambda: balances(page), lambda b: b.get("ETH") == locked, "the locked ETH")

    for name in PANELS:
        panel = page.get_by_role("region", name=name)
        await panel.scroll_into_view_if_needed()
        await expect(panel).to_be_visible()
        box = await panel.bounding_box()
        assert box is not None
        assert box["width"] <= width, f"{name} is wider than the screen"
    overflow = await page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"the page scrolls sideways: {overflow} px wide at {width} px"

    await page.evaluate("window.scrollTo(0, 0)")
    shot = screenshot_path(f"trading-{width}.png")
    await page.screenshot(path=shot, full_page=width == PHONE["width"])
    assert shot.stat().st_size > 10_000
