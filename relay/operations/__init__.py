"""What an operator can change (tenants, balances, keys, groups, prices,
channels), each change audited in its own transaction: the one write path
behind the operator console, the operator API and the config file
(``relay.config``: ``door="config"``). Every change is announced to the web
processes' caches by ``relay.catalog``'s signals, which ``RelayConfig.ready()``
connects in every process.

May import ``relay.models``, ``relay.connections``' egress guard,
``accounts`` and ``billing``.
"""
