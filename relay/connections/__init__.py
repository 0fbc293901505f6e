"""What a web process keeps open: Redis (redis-py, and the pipelined client
the request path's scripts run on), the upstream HTTP pool, and the egress
guard every upstream address passes.

May import ``relay.lib``.
"""
