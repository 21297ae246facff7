"""Prometheus ``/metrics`` (text exposition 0.0.4), one registry per app (docs/service.md).

Counted by the service as it runs: requests by route template, method and status, their latency,
the events ingested by source (`count_ingested`, called by the ingestion routes), and the real-time
triggers decided, with their latency (`observe_triggers`, called by the trigger worker). Read from
the store when scraped (`StoreCollector`, one cheap query each): the events waiting for an account,
the ingestion lag, the runs by status, the offers by channel and status, the trigger queue. Plus
the process's own (CPU, memory, open files, GC).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from upsell.service.auth import require_admin
from upsell.store import gauges
from upsell.store import triggers as trigger_queue

log = logging.getLogger("upsell.service")

Source = Literal["segment", "posthog", "stripe"]
SOURCES: tuple[Source, ...] = ("segment", "posthog", "stripe")

# Any other method (a client may send any token) is counted as "other", to bound the label.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds: an ingestion batch takes milliseconds; a report or a slow database, seconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds from a trigger to its decision: the target is 1 s at p99.
_TRIGGER_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The metrics of one app: its own registry, so that two apps in a process do not clash."""

    def __init__(self, db: sa.Engine) -> None:
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.requests = Counter(
            "upsell_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "upsell_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template and method.",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        ingested = Counter(
            "upsell_events_ingested",
            "Events accepted and stored, by source (segment, posthog, stripe, import).",
            ["source"],
            registry=self.registry,
        )
        self._ingested = {source: ingested.labels(source) for source in SOURCES}
        self.trigger_latency = Histogram(
            "upsell_trigger_latency_seconds",
            "Time from a real-time trigger (or the end of its account's cooldown) to its decision "
            "committed, by this server's worker.",
            buckets=_TRIGGER_BUCKETS,
            registry=self.registry,
        )
        self.triggers = Counter(
            "upsell_triggers_decided",
            "Accounts decided by this server's trigger worker, by outcome: offer (an offer "
            "recorded), held_out, none (no offer: no opportunity, or every option refused).",
            ["outcome"],
            registry=self.registry,
        )
        # The labelled children, looked up once per label set (labels() takes a lock each call).
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.registry.register(StoreCollector(db))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method if method in _METHODS else "other", status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(key[0], key[1], str(status)),
                self.latency.labels(key[0], key[1]),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_ingested(self, source: Source, n: int) -> None:
        self._ingested[source].inc(n)

    def observe_triggers(self, latencies: Sequence[float], outcomes: Mapping[str, int]) -> None:
        """Count a batch of the trigger worker: each decision's latency, and how many ended in
        each outcome (offer, held_out, none)."""
        for seconds in latencies:
            self.trigger_latency.observe(seconds)
        for outcome, n in outcomes.items():
            if n:
                self.triggers.labels(outcome).inc(n)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def count_ingested(app: FastAPI, source: Source, n: int) -> None:
    """Count `n` events stored from `source`; an ingestion route calls it after its commit with
    ``request.app``."""
    metrics: Metrics = app.state.metrics
    metrics.count_ingested(source, n)


class StoreCollector(Collector):
    """The store's gauges, read at each scrape; ``upsell_database_up`` 0 when the database does not
    answer (the other store gauges are then left out of that scrape)."""

    def __init__(self, db: sa.Engine) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "upsell_database_up", "1 when the store answered this scrape's queries, else 0."
        )
        try:
            families = list(self._read())
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics: the database does not answer: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> Iterator[Metric]:
        with self.db.connect() as conn:
            pending = gauges.pending_count(conn=conn)
            received = gauges.last_received_at(conn=conn)
            runs = gauges.runs_by_status(conn=conn)
            succeeded = gauges.last_succeeded_run(conn=conn)
            offers = gauges.contacts_by_channel(conn=conn)
            queued = trigger_queue.depth(conn=conn)
            oldest = trigger_queue.oldest_due(conn=conn)
        now = time.time()
        yield GaugeMetricFamily(
            "upsell_events_pending",
            "Events stored that wait for their user's account (a group call).",
            value=pending,
        )
        lag = GaugeMetricFamily(
            "upsell_ingestion_lag_seconds",
            "Seconds since the newest event was received (absent before the first event).",
        )
        if received is not None:
            lag.add_metric([], max(0.0, now - received.timestamp()))
        yield lag
        by_status = GaugeMetricFamily(
            "upsell_runs", "Runs of the daily job, by status.", labels=["status"]
        )
        for status, n in sorted(runs.items()):
            by_status.add_metric([status], n)
        yield by_status
        last = GaugeMetricFamily(
            "upsell_run_last_success_timestamp_seconds",
            "When the latest successful run finished, in Unix seconds (absent before the first).",
        )
        if succeeded is not None:
            last.add_metric([], succeeded.timestamp())
        yield last
        decided = GaugeMetricFamily(
            "upsell_offers",
            "Offers decided (contacts), by channel and status; status sent = delivered.",
            labels=["channel", "status"],
        )
        for (channel, status), n in sorted(offers.items()):
            decided.add_metric([channel, status], n)
        yield decided
        yield GaugeMetricFamily(
            "upsell_trigger_queue_depth",
            "Accounts on the real-time trigger queue: due, being decided, or waiting out a "
            "cooldown.",
            value=queued,
        )
        age = GaugeMetricFamily(
            "upsell_trigger_queue_oldest_seconds",
            "Seconds since the longest-waiting account on the trigger queue became due (0 when "
            "it is due later; absent when the queue is empty).",
        )
        if oldest is not None:
            age.add_metric([], max(0.0, now - oldest.timestamp()))
        yield age


router = APIRouter(tags=["operations"])


def _metrics_auth(request: Request) -> None:
    """An admin token when ``UPSELL_SERVICE_METRICS_AUTH`` is on; nothing otherwise."""
    if request.app.state.workspace.settings.service_metrics_auth:
        require_admin(request)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(_metrics_auth)],
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}, "description": "The metrics"}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics, text exposition format 0.0.4 (docs/service.md lists the series)."""
    found: Metrics = request.app.state.metrics
    return Response(found.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)
