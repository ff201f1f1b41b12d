"""The order lifecycle worker: expiry of GTT orders and of stale PENDING orders."""
