"""The pure domain: money, order book and matching, events, candles, fees, ledger rules.

No I/O, no asyncio, no clock, no randomness: time, ids and configuration are injected.
The import-linter contract in ``.importlinter`` enforces it.
"""
