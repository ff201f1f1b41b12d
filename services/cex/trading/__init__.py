"""The trading API (internal only): validates orders, locks funds, writes the outbox.

One database transaction per *batch* of concurrent requests (group commit, `store.py`):
funds locked, orders inserted as PENDING and their commands appended to the outbox.
"""
