"""Real-time triggers inside `upsell serve` (docs/in-app.md, "Real-time triggers").

`Triggers` is what the app keeps: the rules ingestion queues accounts by (read from the current
catalog, again when it changes), and the worker: a child process of the server (``python -m
upsell.service.triggers FOLDER``, `main`) that drains the durable trigger queue a batch at a time
through `flows.triggers.TriggerDecider`, woken by the ingestion routes when they queued an account
and otherwise looking every `POLL_SECONDS` (another server on the database may have queued some; a
restarted server finds what was acknowledged but not decided).

A process, not a thread: a decision is a few dozen calls into DuckDB and the database, each of
which gives Python's lock up and takes it back, and with the ingestion threads busy every take
waits its turn — a decision that takes 0.1 s alone took 2 s under PostgreSQL ingestion load as a
thread, 0.4 s as a process (bench/triggers.py). The two talk through the child's standard streams
only: a byte on its stdin wakes it, the end of its stdin (the server stopping, or gone) stops it
after its batch, and it writes a JSON line to its stdout per batch (latencies, outcomes) for the
server's ``/metrics``. Its logs go to the server's stderr. It reads the settings from the same
environment as the server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

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
#: How long shutdown waits for the worker to finish its batch (a batch takes well under a
#: second); then it is terminated: what it had not recorded is decided again once its claims'
#: lease ends.
STOP_SECONDS = 3.0
#: A worker process that died is started again after this long.
RESTART_SECONDS = 5.0


class Triggers:
    """The app's real-time triggers: `rules` for ingestion, `queued` to wake the worker, and the
    worker's `start` and `stop` (the app's lifespan)."""

    def __init__(self, ws: Workspace, metrics: Metrics) -> None:
        self.ws = ws
        self.metrics = metrics
        settings = ws.settings
        self.enabled = settings.service_triggers
        self.worker_enabled = settings.service_triggers and settings.service_trigger_worker
        self._process: subprocess.Popen[bytes] | None = None
        self._wake_fd: int | None = None
        self._watcher: threading.Thread | None = None
        self._stopping = threading.Event()
        self._rules_lock = threading.Lock()
        self._rules: tuple[int, TriggerRules] | None = None
        self._rules_read = -RULES_SECONDS  # never read yet

    # -- ingestion ---------------------------------------------------------------------------------

    def rules(self) -> TriggerRules | None:
        """The rules ingestion queues by; None when triggers are off or the workspace has no
        catalog yet (nothing could be decided)."""
        if not self.enabled:
            return None
        with self._rules_lock:
            # Read again every RULES_SECONDS, also while there is no catalog: a query per request
            # cost a workspace without one a third of its ingestion rate.
            if time.monotonic() - self._rules_read >= RULES_SECONDS:
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
        """Ingestion committed `accounts` triggered accounts: wake the worker (a byte on its
        stdin; never waits: when the pipe is full, the worker has bytes to read already)."""
        fd = self._wake_fd
        if accounts and fd is not None:
            # Full (BlockingIOError): it has bytes to read already; gone: it restarts.
            with contextlib.suppress(OSError):
                os.write(fd, b"!")

    # -- the worker ----------------------------------------------------------------------------

    def start(self) -> None:
        if not self.worker_enabled:
            log.info("the trigger worker is off (UPSELL_SERVICE_TRIGGER(S|_WORKER)=false)")
            return
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="triggers", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "upsell.service.triggers", str(self.ws.folder.resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdin is not None
        os.set_blocking(process.stdin.fileno(), False)
        self._process, self._wake_fd = process, process.stdin.fileno()

    def _watch(self) -> None:
        """Count the worker's reports in ``/metrics``; start the worker again if it died."""
        while not self._stopping.is_set():
            process = self._process
            assert process is not None and process.stdout is not None
            for line in process.stdout:
                try:
                    report = json.loads(line)
                    self.metrics.observe_triggers(report["latencies"], report["outcomes"])
                except (ValueError, KeyError, TypeError):
                    log.warning("the trigger worker wrote a line that is not a report: %r", line)
            code = process.wait()
            if self._stopping.is_set():
                return
            log.error(
                "the trigger worker stopped (exit status %s); starting it again in %ss",
                code,
                RESTART_SECONDS,
            )
            self._close_stdin(process)
            if self._stopping.wait(RESTART_SECONDS):
                return
            self._spawn()

    @staticmethod
    def _close_stdin(process: subprocess.Popen[bytes]) -> None:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop the worker: the end of its stdin, then, if its batch takes longer than `timeout`,
        SIGTERM."""
        self._stopping.set()
        process = self._process
        if process is None:
            return
        self._wake_fd = None
        self._close_stdin(process)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the trigger worker did not stop in %ss: terminating it", timeout)
            process.terminate()
            try:
                process.wait(2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._watcher is not None:
            self._watcher.join(POLL_SECONDS * 2)


# -- the worker process ---------------------------------------------------------------------------


class _Stdin:
    """The worker's stdin: `wait` sleeps until a wake-up byte (True) or the end of the stream
    (False: the server is stopping or gone)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.fd = stream.fileno()
        os.set_blocking(self.fd, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)

    def wait(self, timeout: float) -> bool:
        if not self.selector.select(timeout):
            return True
        try:
            return os.read(self.fd, 65536) != b""
        except BlockingIOError:
            return True


def main(argv: list[str] | None = None) -> None:
    """The worker process: ``python -m upsell.service.triggers FOLDER``, started by `Triggers`."""
    from upsell.flows.triggers import NoCatalog, TriggerDecider
    from upsell.service import logs

    folder = Path((argv if argv is not None else sys.argv[1:])[0])
    settings = Settings()
    logs.configure(settings.service_log_level)
    # Ctrl-C reaches the whole process group: the server stops this process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = _Stdin(sys.stdin.buffer)
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
            while stdin.wait(0):
                try:
                    batch = decider.tick()
                except NoCatalog:
                    batch = None
                except Exception:
                    log.exception("a batch of triggers failed; trying again in %ss", ERROR_SECONDS)
                    if not stdin.wait(ERROR_SECONDS):
                        return
                    continue
                if batch is not None:
                    report = {"latencies": batch.latencies, "outcomes": batch.outcomes()}
                    sys.stdout.write(json.dumps(report) + "\n")
                    sys.stdout.flush()
                    log.debug(
                        "decided the triggers of %d account(s): %s",
                        len(batch.entries),
                        ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in batch.seconds.items()),
                    )
                    continue
                _warm(decider)
                if not stdin.wait(POLL_SECONDS):
                    return
        except BrokenPipeError:  # the server is gone
            return
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


if __name__ == "__main__":
    main()
