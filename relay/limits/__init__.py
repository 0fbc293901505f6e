"""Rate limits per key and per tenant (requests and tokens per minute,
requests in flight), decided in Redis by Lua scripts, with a per-process
fallback when Redis cannot be reached, and the limit on invalid keys from
one address.

May import ``relay.catalog``, ``relay.connections``, ``relay.contract`` and
``relay.lib``.
"""
