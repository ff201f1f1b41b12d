"""Prometheus metrics of the operator (served on ``CEX_METRICS_PORT``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECONCILES = Counter(
    "cex_operator_reconciles_total", "Markets reconciled successfully (create/update/resume)"
)
RECONCILE_ERRORS = Counter(
    "cex_operator_reconcile_errors_total",
    "Failed reconciliations of a market (invalid spec, Kafka/Postgres/Redis/API errors)",
    ["market"],
)
MARKETS = Gauge(
    "cex_operator_markets", "Markets handled by this operator, by their Ready condition", ["ready"]
)


def set_markets(ready: dict[str, bool]) -> None:
    """Update the gauge from market → Ready."""
    ready_count = sum(ready.values())
    MARKETS.labels(ready="True").set(ready_count)
    MARKETS.labels(ready="False").set(len(ready) - ready_count)
