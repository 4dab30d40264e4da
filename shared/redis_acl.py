"""The Redis ACL the service needs, for a Redis shared with other software (a managed Redis).

Its own keys (``shared/keys.py``'s prefix and arq's job keys), no pub/sub channels, and the commands it
sends, Lua scripts' included (Redis checks those against the user too). ``python -m shared.redis_acl USER``
prints the ``ACL SETUSER`` line; ``tests/test_managed_redis.py`` runs the service under exactly these rules, so
a key, channel or command the code starts using without adding it here fails that test.
"""

from __future__ import annotations

import sys

from arq import constants as arq_keys

from shared import keys

KEY_PATTERNS: tuple[str, ...] = (
    f"{keys.PREFIX}:*",
    f"{arq_keys.job_key_prefix}*",
    f"{arq_keys.in_progress_key_prefix}*",
    f"{arq_keys.result_key_prefix}*",
    f"{arq_keys.retry_key_prefix}*",
    arq_keys.abort_jobs_ss,
)
CHANNEL_PATTERNS: tuple[str, ...] = ()  # the service uses no pub/sub

COMMANDS: tuple[str, ...] = (
    # connection: health checks, the readiness probe, arq's start-up report, a database named in the URL
    "ping",
    "info",
    "dbsize",
    "select",
    # strings: heartbeats, limits, progress, arq's job, in-progress, retry and result keys
    "get",
    "set",
    "setex",
    "psetex",
    "incr",
    "incrby",
    "decr",
    "exists",
    "del",
    "unlink",
    "expire",
    "pexpire",
    "scan",
    "time",
    # lists: conversation memory, benchmark timings
    "rpush",
    "lrange",
    "ltrim",
    # sets: each worker's turns, and the workers that have some
    "sadd",
    "srem",
    "smembers",
    # sorted sets: arq's queue and aborts, the pending turns, the sliding-window limits
    "zadd",
    "zrem",
    "zscore",
    "zcard",
    "zrange",
    "zrangebyscore",
    "zremrangebyscore",
    # streams: turn events and each gateway's wake stream
    "xadd",
    "xread",
    "xrange",
    "xrevrange",
    "xlen",
    # the history queue (shared/history.py): its writers' consumer group
    "xgroup|create",
    "xreadgroup",
    "xautoclaim",
    "xack",
    "xdel",
    # scripts (the commands inside them are checked against these rules too)
    "eval",
    "evalsha",
    "script|load",
    # transactions (arq's enqueue and job claims, the re-index lock)
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
)


def acl_rules() -> list[str]:
    """The user's rules, every earlier permission reset first."""
    return [
        "resetkeys",
        *(f"~{pattern}" for pattern in KEY_PATTERNS),
        "resetchannels",
        *(f"&{pattern}" for pattern in CHANNEL_PATTERNS),
        "-@all",
        *(f"+{command}" for command in COMMANDS),
    ]


def main() -> None:
    user = sys.argv[1] if len(sys.argv) > 1 else "tutor"
    print(f"ACL SETUSER {user} on >PASSWORD {' '.join(acl_rules())}")


if __name__ == "__main__":
    main()
