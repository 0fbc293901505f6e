"""Money and usage: prices, the ledger and balances (PostgreSQL, the book of
record), the live balance and holds in Redis, usage records written by the
workers from the usage stream, rollups, reports and reconciliation.

May import ``accounts``; never ``relay``.
"""
