"""Settlement: applies the engines' events to orders, trades, balances and the ledger.

``batch`` applies one batch of events in one database transaction (idempotent by
``(market, seq)``); ``service`` consumes the ``executions`` topic and feeds it batches.
"""
