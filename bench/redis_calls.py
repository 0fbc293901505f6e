"""Redis calls per request: the relay's Redis commands counted by the servers
themselves (INFO commandstats, summed over a cluster's primaries), before and
after a measured run.

The request path's round trips are its script calls (EVALSHA, or EVAL the
first time): the gate and the settle, pipelined each into one round trip
(tests/relay/pipeline/test_round_trips.py). The commands run are more: Redis
counts the commands a script runs too (~30 a request between the two), and
the worker's (the usage drain's claims and acknowledgements, beat's tasks,
channel health's flush).
"""

from __future__ import annotations

from collections import Counter

import redis

SCRIPTS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall")


def commands(url: str) -> Counter[str]:
    """Calls of each command so far, over every primary."""
    from billing import redis_url

    with redis_url.client(url) as client:
        if isinstance(client, redis.RedisCluster):
            replies = client.info("commandstats", target_nodes=redis.RedisCluster.PRIMARIES)
            infos = list(replies.values())
        else:
            infos = [client.info("commandstats")]
    calls: Counter[str] = Counter()
    for info in infos:
        for name, stats in info.items():
            if name.startswith("cmdstat_"):
                calls[name.removeprefix("cmdstat_")] += int(stats["calls"])
    return calls


def per_request(calls: Counter[str], requests: int) -> dict[str, float]:
    scripts = sum(calls[name] for name in SCRIPTS)
    return {
        "redis_scripts_per_request": round(scripts / requests, 3),
        "redis_commands_per_request": round(sum(calls.values()) / requests, 3),
    }
