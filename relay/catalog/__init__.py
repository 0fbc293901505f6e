"""What the request path knows of keys, groups, models, prices and channels:
read from PostgreSQL into frozen objects and cached per process, so the hot
path never queries the database for configuration.

May import ``relay.models``, ``relay.providers``, ``relay.contract``,
``relay.lib``, and ``accounts`` and ``billing``.
"""
