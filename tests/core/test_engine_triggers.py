"""The lazy heaps of stops and GTT orders stay bounded under cancel churn, and compacting
them changes no outcome."""

from __future__ import annotations

from cex.core.events import OrderExpired, TimeInForce
from cex.core.matching import MatchingEngine

from .helpers import BUY, SELL, Harness, cancel, limit, stop_limit

CHURN = 5_000


def test_cancelled_stops_and_gtt_orders_do_not_pile_up_in_the_heaps() -> None:
    """Orders placed far from their trigger and cancelled leave dead heap entries behind;
    without compaction the heaps grew by one entry per order for ever (nothing trades, so
    no stop surfaces, and no expiry comes due)."""
    h = Harness()
    engine: MatchingEngine = h.engine
    h.send(limit(1, SELL, 200, 1, user=9))
    h.send(limit(2, BUY, 100, 1, user=8))
    live_gtt = limit(3, BUY, 99, 1, expire_at=10**12)
    live_stop = stop_limit(4, BUY, 300, 300, 1)
    h.send(live_gtt)
    h.send(live_stop)
    for i in range(CHURN):
        oid = 10 + 2 * i
        h.send(limit(oid, BUY, 98, 1, user=2, expire_at=10**12 + i))
        h.send(stop_limit(oid + 1, SELL, 50, 50, 1, user=3))
        h.send(cancel(2, oid))
        h.send(cancel(3, oid + 1))
        for heap in (engine._gtt, engine._buy_stops, engine._sell_stops):
            assert len(heap) <= 2 * 2 + 64 + 1  # twice the live entries plus the margin
    # The live entries survived every compaction and still fire.
    out = h.send(limit(99_999, BUY, 100, 1, user=2, ts=10**12))
    expired = [e for e in out if isinstance(e, OrderExpired)]
    assert [e.order_id for e in expired] == [3]
    assert len(engine._gtt) <= 2 + 64
    assert [o["id"] for o in engine.open_orders() if not o["working"]] == [4]
    assert {o["tif"] for o in engine.open_orders()} <= {TimeInForce.GTC, TimeInForce.GTT}
