"""Benchmarks that print figures (``cex bench ...``); performance is measured, not asserted."""
