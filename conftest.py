"""The shared fixtures (`tests/fixtures.py`) for both test trees, `tests/` and `e2e/`."""

pytest_plugins = ["tests.fixtures"]
