"""The public API (`cex serve api`): Binance-Spot-compatible REST for traders and the web UI,
plus the exchange's own account endpoints under `/cex/v1`."""
