"""Packaging: what the Dockerfile builds, checked without Docker."""
