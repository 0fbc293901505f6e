"""What an operator can change (tenants, balances, keys, groups, prices,
channels), each change audited in its own transaction: the one write path
behind the operator console and the operator API.

May import ``relay.models``, ``relay.connections``' egress guard,
``relay.catalog``'s invalidation (every change is announced to the web
processes' caches), ``accounts`` and ``billing``.
"""
