"""The local stack: real Kafka (KRaft), PostgreSQL and Redis plus the services, on loopback.

Installed and started by the repo itself on a fresh machine (DESIGN.md §9). Downloads are
cached under the user's cache directory; data and logs live in the git-ignored ``.cex/``.
Every process runs under one supervisord, so ``cex stack down`` stops all of it.
"""
