"""Shared adapters: Kafka, Postgres, Redis, telemetry, settings."""
