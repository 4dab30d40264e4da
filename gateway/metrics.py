"""Prometheus metrics of the gateway (``GET /metrics``), including what workers report in their heartbeats.

One registry per app (tests build many apps in one process). Hot-path counts (events relayed) are plain
integers read at scrape time, so relaying a token never takes a metrics lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from gateway.readiness import check_readiness, worker_heartbeats
from shared import keys

if TYPE_CHECKING:
    from gateway.relay import TurnRelay


class _RelayCollector(Collector):
    def __init__(self, relay: TurnRelay) -> None:
        self._relay = relay

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "tutor_relay_events",
            "Turn events delivered to subscribers by this process's relay.",
            value=self._relay.events_relayed,
        )


class GatewayMetrics:
    def __init__(self, relay: TurnRelay) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.turns_started = Counter("tutor_turns_started", "Asks accepted as turns.", registry=self.registry)
        self.asks_refused = Counter(
            "tutor_asks_refused", "Asks refused before they became turns.", ["code"], registry=self.registry
        )
        self.sockets_open = Gauge("tutor_sockets_open", "Open chat WebSockets.", registry=self.registry)
        self.turns_pending = Gauge("tutor_turns_pending", "Turns queued or running.", registry=self.registry)
        self.workers_alive = Gauge("tutor_workers_alive", "Workers with a fresh heartbeat.", registry=self.registry)
        self.worker_jobs = Gauge("tutor_worker_jobs_running", "Turns running, all workers.", registry=self.registry)
        self.ready = Gauge("tutor_ready", "1 when /ready would answer 200.", registry=self.registry)
        self.registry.register(_RelayCollector(relay))

    async def render(self, redis: Redis, collection: str, sockets_open: int) -> bytes:
        readiness = await check_readiness(redis, collection)
        self.sockets_open.set(sockets_open)
        self.ready.set(0 if readiness.failing else 1)
        if readiness.checks["redis"].ok:
            beats = await worker_heartbeats(redis)
            self.workers_alive.set(len(beats))
            self.worker_jobs.set(sum(beat.jobs_running for beat in beats))
            self.turns_pending.set(await redis.zcard(keys.PENDING_TURNS))
        else:
            self.workers_alive.set(0)
        return generate_latest(self.registry)
