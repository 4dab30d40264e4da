"""Prometheus metrics of the gateway (``GET /metrics``), including what workers report in their heartbeats.

One registry per app (tests build many apps in one process). Hot-path counts (events relayed) are plain
integers read at scrape time, so relaying a token never takes a metrics lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from gateway.readiness import check_readiness, worker_heartbeats
from shared import keys

if TYPE_CHECKING:
    from gateway.relay import TurnRelay


class _RelayCollector(Collector):
    def __init__(self, relay: TurnRelay) -> None:
        self._relay = relay

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        relay = self._relay
        yield CounterMetricFamily(
            "tutor_relay_events",
            "Turn events delivered to subscribers by this process's relay.",
            value=relay.events_relayed,
        )
        yield CounterMetricFamily(
            "tutor_relay_read_failures",
            "Reads of turn events that failed (the relay retries).",
            value=relay.read_failures,
        )
        yield CounterMetricFamily(
            "tutor_relay_turns_unreadable",
            "Subscriptions ended with an error because Redis refused to read their turn.",
            value=relay.turns_unreadable,
        )
        yield GaugeMetricFamily(
            "tutor_relay_ok", "0 while the relay's reads keep failing.", value=0 if relay.failing else 1
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
        self._relay = relay
        self.registry.register(_RelayCollector(relay))

    async def render(self, redis: Redis, collection: str, sockets_open: int) -> bytes:
        readiness = await check_readiness(redis, collection, relay_failing=self._relay.failing)
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
