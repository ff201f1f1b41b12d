"""The outbox relay: publishes the outbox rows to the `orders` topic, in command order per
market, exactly once (see `cex.infra.outbox`)."""
