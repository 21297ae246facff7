"""Real-time triggers inside `upsell serve` (docs/in-app.md, "Real-time triggers").

`Triggers` is what the app keeps: the rules ingestion queues accounts by (read from the current
catalog, again when it changes), and the worker: a thread that drains the durable trigger queue a
batch at a time through `flows.triggers.TriggerDecider`, woken by the ingestion routes when they
queued an account and otherwise looking every `POLL_SECONDS` (another server on the database may
have queued some; a restarted server finds what was acknowledged but not decided). It has an
analytics back end of its own, so that a daily run or an admin computation never holds it up.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from upsell.domain.triggers import TriggerRules
from upsell.service.metrics import Metrics
from upsell.store.catalogs import latest_catalog, latest_version
from upsell.store.locks import holder_id
from upsell.workspace import Workspace

if TYPE_CHECKING:
    # The decision step (the engine) loads in the worker's thread, not with the service.
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


class Triggers:
    """The app's real-time triggers: `rules` for ingestion, `queued` to wake the worker, and the
    worker's `start` and `stop` (the app's lifespan)."""

    def __init__(self, ws: Workspace, metrics: Metrics) -> None:
        self.ws = ws
        self.metrics = metrics
        settings = ws.settings
        self.enabled = settings.service_triggers
        self.worker_enabled = settings.service_triggers and settings.service_trigger_worker
        self.cooldown = timedelta(seconds=settings.service_trigger_cooldown_seconds)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
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
        if accounts:
            self._wake.set()

    # -- the worker ----------------------------------------------------------------------------

    def start(self) -> None:
        if not self.worker_enabled:
            log.info("the trigger worker is off (UPSELL_SERVICE_TRIGGER(S|_WORKER)=false)")
            return
        self._thread = threading.Thread(target=self._run, name="triggers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        from upsell.flows.triggers import NoCatalog, TriggerDecider

        # A back end of its own, one thread: queries on a few accounts' rows are quicker on one
        # (and leave the other cores to ingestion), and a daily run never holds it up.
        backend = self.ws.new_backend(threads=1)
        decider = TriggerDecider(
            self.ws, holder=holder_id(), cooldown=self.cooldown, backend=backend
        )
        try:
            self._warm(decider)
            while not self._stop.is_set():
                try:
                    batch = decider.tick()
                except NoCatalog:
                    batch = None
                except Exception:
                    log.exception("a batch of triggers failed; trying again in %ss", ERROR_SECONDS)
                    self._stop.wait(ERROR_SECONDS)
                    continue
                if batch is not None:
                    self.metrics.observe_triggers(batch)
                    log.debug(
                        "decided the triggers of %d account(s): %s",
                        len(batch.entries),
                        ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in batch.seconds.items()),
                    )
                    continue
                self._warm(decider)
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
        finally:
            decider.close()

    def _warm(self, decider: TriggerDecider) -> None:
        """Compile the queries of today while idle (seconds), so that a trigger does not wait."""
        from upsell.flows.triggers import NoCatalog

        try:
            decider.warm(datetime.now(UTC))
        except NoCatalog:
            pass
        except Exception:
            log.exception("could not prepare the trigger worker's queries")
