"""Real-time triggers inside `upsell serve` (docs/in-app.md, "Real-time triggers").

`Triggers` is what the app keeps: the rules ingestion queues accounts by (read from the current
catalog, again when it changes), and the worker: a child process of the server (`run_worker`) that
drains the durable trigger queue a batch at a time through `flows.triggers.TriggerDecider`, woken
by the ingestion routes when they queued an account and otherwise looking every `POLL_SECONDS`
(another server on the database may have queued some; a restarted server finds what was
acknowledged but not decided).

A process, not a thread: a decision is a few dozen calls into DuckDB and the database, each of
which gives Python's lock up and takes it back, and with the ingestion threads busy every take
waits its turn — a decision that takes 0.1 s alone took 2 s under PostgreSQL ingestion load as a
thread, 0.4 s as a process (bench/triggers.py). The child sends what it decided (latencies,
outcomes) back for ``/metrics``; it stops with the server, and by itself when the server is gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import TYPE_CHECKING

from upsell.domain.triggers import TriggerRules
from upsell.service.metrics import Metrics
from upsell.settings import Settings
from upsell.store.catalogs import latest_catalog, latest_version
from upsell.store.locks import holder_id
from upsell.workspace import Workspace

if TYPE_CHECKING:
    # The decision step (the engine) loads in the worker's process, not with the service.
    from upsell.flows.triggers import TriggerDecider

log = logging.getLogger("upsell.service.triggers")

#: The longest the worker sleeps when nothing is due.
POLL_SECONDS = 0.5
#: How often the ingestion rules look for a new catalog.
RULES_SECONDS = 5.0
#: After a batch failed (a database error), the worker waits this long.
ERROR_SECONDS = 2.0
#: How long shutdown waits for the batch in progress (its claims are taken over once their
#: lease ends, when it does not finish).
STOP_SECONDS = 10.0
#: A worker process that died is started again after this long.
RESTART_SECONDS = 5.0


@dataclass(frozen=True)
class Report:
    """What one batch of the worker decided, for the server's ``/metrics``: the latency of each
    decided account, and how many ended in an offer, held out, or no offer."""

    latencies: Sequence[float]
    outcomes: Mapping[str, int]


class Triggers:
    """The app's real-time triggers: `rules` for ingestion, `queued` to wake the worker, and the
    worker's `start` and `stop` (the app's lifespan)."""

    def __init__(self, ws: Workspace, metrics: Metrics) -> None:
        self.ws = ws
        self.metrics = metrics
        settings = ws.settings
        self.enabled = settings.service_triggers
        self.worker_enabled = settings.service_triggers and settings.service_trigger_worker
        self._context = multiprocessing.get_context("spawn")
        self._wake = self._context.Event()
        self._stop = self._context.Event()
        self._reports: multiprocessing.Queue[Report] = self._context.Queue()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._watcher: threading.Thread | None = None
        self._stopping = threading.Event()
        self._rules_lock = threading.Lock()
        self._rules: tuple[int, TriggerRules] | None = None
        self._rules_read = 0.0

    # -- ingestion ---------------------------------------------------------------------------------

    def rules(self) -> TriggerRules | None:
        """The rules ingestion queues by; None when triggers are off or the workspace has no
        catalog yet (nothing could be decided)."""
        if not self.enabled:
            return None
        with self._rules_lock:
            if time.monotonic() - self._rules_read >= RULES_SECONDS or self._rules is None:
                self._rules_read = time.monotonic()
                self._rules = self._read_rules(self._rules)
            return None if self._rules is None else self._rules[1]

    def _read_rules(
        self, known: tuple[int, TriggerRules] | None
    ) -> tuple[int, TriggerRules] | None:
        from upsell.config.catalog import parse_catalog

        with self.ws.db.connect() as conn:
            version = latest_version(conn=conn)
            if version is None:
                return None
            if known is not None and known[0] == version:
                return known
            latest = latest_catalog(conn=conn)
        assert latest is not None
        version, text, source = latest
        return version, TriggerRules.of(parse_catalog(text, source).catalog)

    def queued(self, accounts: int) -> None:
        """Ingestion committed `accounts` triggered accounts: wake the worker."""
        if accounts and self._process is not None:
            self._wake.set()

    # -- the worker ----------------------------------------------------------------------------

    def start(self) -> None:
        if not self.worker_enabled:
            log.info("the trigger worker is off (UPSELL_SERVICE_TRIGGER(S|_WORKER)=false)")
            return
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="triggers", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        self._stop.clear()
        self._process = self._context.Process(
            target=run_worker,
            args=(
                self.ws.folder,
                self.ws.settings,
                os.getpid(),
                self._wake,
                self._stop,
                self._reports,
            ),
            name="upsell-triggers",
            daemon=True,
        )
        self._process.start()

    def _watch(self) -> None:
        """Count the worker's reports in ``/metrics``; start the worker again if it died."""
        while not self._stopping.is_set():
            try:
                report = self._reports.get(timeout=POLL_SECONDS)
            except queue.Empty:
                process = self._process
                if process is not None and not process.is_alive() and not self._stopping.is_set():
                    log.error(
                        "the trigger worker stopped (exit status %s); starting it again in %ss",
                        process.exitcode,
                        RESTART_SECONDS,
                    )
                    if not self._stopping.wait(RESTART_SECONDS):
                        self._spawn()
                continue
            self.metrics.observe_triggers(report.latencies, report.outcomes)

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        self._stopping.set()
        process = self._process
        if process is None:
            return
        self._stop.set()
        self._wake.set()
        process.join(timeout)
        if process.is_alive():
            log.warning("the trigger worker did not stop in %ss: terminating it", timeout)
            process.terminate()
            process.join(2)
        if self._watcher is not None:
            self._watcher.join(POLL_SECONDS * 2)


def run_worker(
    folder: Path,
    settings: Settings,
    parent: int,
    wake: Event,
    stop: Event,
    reports: multiprocessing.Queue[Report],
) -> None:
    """The worker process: decide the trigger queue until `stop` is set or the server (`parent`)
    is gone."""
    from upsell.flows.triggers import NoCatalog, TriggerDecider
    from upsell.service import logs

    logs.configure(settings.service_log_level)
    # Ctrl-C reaches the whole process group: the server stops this process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with Workspace.open(folder, settings) as ws:
        # An analytics back end of one thread: queries on a few accounts' rows are quicker on one,
        # and leave the other cores to ingestion.
        decider = TriggerDecider(
            ws,
            holder=holder_id(),
            cooldown=timedelta(seconds=settings.service_trigger_cooldown_seconds),
            backend=ws.new_backend(threads=1),
        )
        try:
            _warm(decider)
            while not stop.is_set() and os.getppid() == parent:
                try:
                    batch = decider.tick()
                except NoCatalog:
                    batch = None
                except Exception:
                    log.exception("a batch of triggers failed; trying again in %ss", ERROR_SECONDS)
                    stop.wait(ERROR_SECONDS)
                    continue
                if batch is not None:
                    reports.put(Report(batch.latencies, batch.outcomes()))
                    log.debug(
                        "decided the triggers of %d account(s): %s",
                        len(batch.entries),
                        ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in batch.seconds.items()),
                    )
                    continue
                _warm(decider)
                wake.wait(POLL_SECONDS)
                wake.clear()
        finally:
            decider.close()


def _warm(decider: TriggerDecider) -> None:
    """Compile the queries of today while idle (seconds), so that a trigger does not wait."""
    from upsell.flows.triggers import NoCatalog

    try:
        decider.warm(datetime.now(UTC))
    except NoCatalog:
        pass
    except Exception:
        log.exception("could not prepare the trigger worker's queries")
