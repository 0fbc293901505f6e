"""Building blocks with no knowledge of requests, keys or money: typed
environment readers, running database work from async code, a TTL cache,
JSON log lines, client addresses, encrypted fields, the Prometheus metrics,
finishing what a cancelled request started.

Imports nothing else from ``relay``.
"""
