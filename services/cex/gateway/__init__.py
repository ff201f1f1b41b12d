"""The WebSocket gateway (`cex serve gateway`): Binance's market streams from the engines'
Redis book keys and pub/sub channels (DESIGN.md §1, §5, §7)."""
