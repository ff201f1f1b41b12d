"""What a trader does on the trading screen, in a real browser on the real exchange: two
traders signed in with emailed codes and funded through the faucet; one rests a limit order
(the book and their open orders show it), the other crosses it from the order form (price
taken by clicking the book); both see the trade, their history and their balances change live,
without reloading; cancel one and cancel all; an order the API refuses shows its message.
Each test uses its own users and prices, so they stay apart on the shared exchange."""

from __future__ import annotations

from decimal import Decimal

from playwright.async_api import Page, expect

from .conftest import (
    NewContext,
    Web,
    balances,
    book_side,
    deposit,
    eventually,
    faucet,
    place,
    rows,
    screenshot_path,
    sign_in,
)

BTC, USDT = "BTC", "USDT"


async def trader(new_context: NewContext, web: Web, email: str) -> Page:
    page = await (await new_context()).new_page()
    await sign_in(page, web, email)
    return page


async def test_a_resting_order_crossed_from_the_form_shows_live_on_both_screens(
    web: Web, new_context: NewContext
) -> None:
    maker = await trader(new_context, web, "web-maker@example.com")
    taker = await trader(new_context, web, "web-taker@example.com")
    await deposit(maker, BTC, "1")  # the account page's faucet form
    await faucet(taker, USDT, "10000")
    for page in (maker, taker):
        await page.goto("/trade/BTCUSDT")
    await maker.screenshot(path=screenshot_path("trading-after-trade-1440.png"))
    await eventually(
        lambda: balances(taker),
        lambda b: b.get(USDT) == (Decimal("10000"), Decimal(0)),
        "taker funded",
    )

    # The maker rests a sell: their open orders, both books and their balance show it.
    await place(maker, "Sell", price="30000", amount="0.25")
    await eventually(
        lambda: rows(maker, "Open orders"),
        lambda r: (
            [(row[1], row[3], row[5], row[6]) for row in r]
            == [("Sell", "30,000.0", "0.25000", "0.00000")]
        ),
        "the maker's open order",
    )
    for page in (maker, taker):
        await eventually(lambda p=page: book_side(p, "Asks"),
                         lambda asks: asks == [(Decimal("30000"), Decimal("0.25"))],
                         "the ask in the book")  # fmt: skip
    await eventually(lambda: balances(maker), lambda b: b.get(BTC) == (Decimal("0.75"),
                     Decimal("0.25")), "the maker's locked BTC")  # fmt: skip

    # The taker takes the price from the book and buys part of it.
    await (
        taker.get_by_role("region", name="Order book")
        .get_by_role("button", name="Ask 30000.0: use this price")
        .click()
    )
    taker_form = taker.get_by_role("region", name="Place order")
    await expect(taker_form.get_by_role("textbox", name="Price", exact=True)).to_have_value(
        "30000.0"
    )
    await place(taker, "Buy", amount="0.1")

    # Both screens, live: the trade, the book's rest, histories and balances.
    for page in (maker, taker):
        await eventually(
            lambda p=page: rows(p, "Recent trades"),
            lambda r: (
                bool(r)
                and (first_number(r[0][0]), first_number(r[0][1]))
                == (Decimal("30000"), Decimal("0.1"))
            ),
            "the trade in recent trades",
        )
        await eventually(lambda p=page: book_side(p, "Asks"),
                         lambda asks: asks == [(Decimal("30000"), Decimal("0.15"))],
                         "the ask's rest in the book")  # fmt: skip
        await eventually(
            lambda p=page: rows(p, "Trade history"),
            lambda r: (
                [(first_number(row[2]), first_number(row[3])) for row in r]
                == [(Decimal("30000"), Decimal("0.1"))]
            ),
            "the trade in the trader's history",
        )
    await eventually(
        lambda: rows(maker, "Open orders"),
        lambda r: [(row[5], row[6]) for row in r] == [("0.25000", "0.10000")],
        "the maker's partly filled order",
    )
    await eventually(
        lambda: rows(taker, "Order history"),
        lambda r: [(row[1], row[6]) for row in r][:1] == [("Buy", "filled")],
        "the taker's filled order",
    )
    # Fees (0.1 %) are charged in the asset received.
    await eventually(lambda: balances(maker), lambda b: b.get(BTC) == (Decimal("0.75"),
                     Decimal("0.15")) and b.get(USDT) == (Decimal("2997"), Decimal(0)),
                     "the maker's balances")  # fmt: skip
    await maker.screenshot(path=screenshot_path("trading-after-trade-1440.png"))
    await eventually(
        lambda: balances(taker),
        lambda b: (
            b.get(BTC) == (Decimal("0.0999"), Decimal(0))
            and b.get(USDT) == (Decimal("7000"), Decimal(0))
        ),
        "the taker's balances",
    )


async def test_cancel_one_then_cancel_all(web: Web, new_context: NewContext) -> None:
    page = await trader(new_context, web, "web-cancel@example.com")
    await faucet(page, USDT, "1000")
    await page.goto("/trade/BTCUSDT")
    for placed, price in enumerate(("10001", "10002", "10003"), start=1):
        await place(page, "Buy", price=price, amount="0.01")
        await eventually(lambda: rows(page, "Open orders"),
                         lambda r, n=placed: len(r) == n, f"{placed} open orders")  # fmt: skip
    await eventually(lambda: balances(page), lambda b: b.get(USDT) == (Decimal("699.94"),
                     Decimal("300.06")), "funds locked by three orders")  # fmt: skip

    open_orders = page.get_by_role("region", name="Open orders")
    await (
        open_orders.get_by_role("row")
        .filter(has_text="10,002.0")
        .get_by_role("button", name="Cancel", exact=True)
        .click()
    )
    await eventually(
        lambda: rows(page, "Open orders"),
        lambda r: sorted(row[3] for row in r) == ["10,001.0", "10,003.0"],
        "the other two orders",
    )
    await eventually(lambda: book_side(page, "Bids"),
                     lambda bids: [p for p, _ in bids] == [Decimal("10003"), Decimal("10001")],
                     "the book without the cancelled bid")  # fmt: skip

    await open_orders.get_by_role("button", name="Cancel all").click()
    await expect(open_orders.get_by_text("No open orders.")).to_be_visible()
    await eventually(lambda: book_side(page, "Bids"), lambda bids: bids == [], "an empty book")
    await eventually(
        lambda: balances(page),
        lambda b: b.get(USDT) == (Decimal("1000"), Decimal(0)),
        "funds unlocked",
    )
    await eventually(
        lambda: rows(page, "Order history"),
        lambda r: sorted(row[6] for row in r) == ["canceled"] * 3,
        "three cancelled orders in the history",
    )


async def test_an_order_the_api_refuses_shows_its_message(
    web: Web, new_context: NewContext
) -> None:
    page = await trader(new_context, web, "web-refused@example.com")
    await faucet(page, USDT, "100")
    await page.goto("/trade/ETHUSDT")
    await eventually(
        lambda: balances(page), lambda b: b.get(USDT) == (Decimal("100"), Decimal(0)), "funded"
    )
    # 1 ETH at 500 USDT passes every filter of the market but needs more than the balance.
    await place(page, "Buy", price="500", amount="1")
    form = page.get_by_role("region", name="Place order")
    await expect(form.get_by_role("alert")).to_have_text(
        "Account has insufficient balance for requested action."
    )
    await expect(page.get_by_role("region", name="Open orders").get_by_text("No open orders.")
                 ).to_be_visible()  # fmt: skip
    assert (await balances(page))[USDT] == (Decimal("100"), Decimal(0))


def first_number(text: str) -> Decimal:
    from .conftest import decimal_in

    return decimal_in(text.split()[0])
