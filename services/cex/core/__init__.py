"""The pure domain: money, order book and matching, events, candles, fees, ledger rules.

No I/O, no asyncio, no clock, no randomness: time, ids and configuration are injected.
The import-linter contract in ``.importlinter`` enforces it.

* ``errors``  — the exception tree of the core (all permanent).
* ``money``   — decimal strings at the edges ↔ integers on a grid (ticks, lots, units).
* ``market``  — ``MarketConfig``: the grid, bounds, fees and status of one market.
* ``events``  — every command and event schema, versioned, with the msgpack codec.
* ``orders``  — the order state machine, as a (state, trigger) → state table.
* ``matching`` — ``MatchingEngine``: the book and matching of one market, with snapshots.
* ``order_rules`` — the order shapes and bounds the trading API and the engine share.
* ``ledger``  — double-entry postings for the engine's events (settlement's money rules).
"""
