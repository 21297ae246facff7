"""The daily job inside `upsell serve` (docs/service.md, "Scheduler").

With a ``schedule:`` section in config.yaml, a background thread runs the daily job every day at
the configured time, as of that day (in the configured time zone). Each wake-up (`Scheduler.tick`)
looks at the latest scheduled time at or before now: unless a run at that day has succeeded, it
runs one. So a run the server missed while it was down is caught up when it starts, and a day that
succeeded is never run again. The job's lock (`flows.runs`) makes sure that of several servers on
one database only one runs it; the others find it done. A scheduled run that failed is tried again
after `RETRY_AFTER`.

`Jobs` runs the claimed runs of the scheduler and of the admin API; it holds the lock that keeps
the workspace's analytics back end (DuckDB, not thread-safe) to one flow at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from upsell.config.workspace import Schedule
from upsell.errors import UpsellError
from upsell.flows.runs import INTERRUPTED, Claim, RunBusy, claim_run, execute_run
from upsell.service import messages
from upsell.service.triggers import Triggers
from upsell.store.runs import Run, get_run, list_runs
from upsell.workspace import Workspace

log = logging.getLogger("upsell.service.scheduler")

#: The longest the scheduler's thread sleeps between two looks at the clock.
POLL_SECONDS = 60.0
#: A failed scheduled run is tried again after this long.
RETRY_AFTER = timedelta(hours=1)
#: How long shutdown waits for a run in progress (it is marked interrupted by the next claim).
STOP_SECONDS = 20.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class Jobs:
    """The runs of one server: executed one at a time on the analytics back end."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        #: Held by every flow of the service that computes with `ws.backend`.
        self.analytics = threading.Lock()
        #: Read now, so that an invalid config.yaml stops `upsell serve` before it listens.
        self.schedule = ws.config.schedule
        self._threads: list[threading.Thread] = []

    def execute(self, claim: Claim) -> None:
        """Execute a claimed run in this thread; a failure is recorded with the run and logged."""
        with self.analytics:
            try:
                execute_run(self.ws, claim)
            except UpsellError as exc:  # the workspace's state: no traceback to read
                log.error("run %s as of %s failed: %s", claim.run.run_id, claim.run.as_of, exc)
            except Exception:
                log.exception("run %s as of %s failed", claim.run.run_id, claim.run.as_of)

    def start(self, claim: Claim) -> None:
        """Execute a claimed run in a thread of its own."""
        thread = threading.Thread(
            target=self.execute, args=(claim,), name=f"run-{claim.run.run_id}", daemon=True
        )
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)


def due(schedule: Schedule, now: datetime) -> tuple[date, datetime]:
    """The latest scheduled time at or before `now`, and the day a run then is as of."""
    zone = schedule.zone
    day = now.astimezone(zone).date()
    at = datetime.combine(day, schedule.at, tzinfo=zone)
    if at > now:
        day -= timedelta(days=1)
        at = datetime.combine(day, schedule.at, tzinfo=zone)
    return day, at


def next_time(schedule: Schedule, now: datetime) -> datetime:
    """The first scheduled time after `now`."""
    day, _ = due(schedule, now)
    return datetime.combine(day + timedelta(days=1), schedule.at, tzinfo=schedule.zone)


def settled(runs: Sequence[Run]) -> bool:
    """Whether the day of `runs` (its recorded runs) needs no scheduled run now: one succeeded, or
    a scheduled one failed less than `RETRY_AFTER` ago (not one interrupted by a stop: that is
    caught up at once). Dry runs do not count; a run under way holds the lock."""
    now = utc_now()
    for r in runs:
        if r.dry_run:
            continue
        if r.status == "succeeded":
            return True
        recent = r.finished_at is not None and now - r.finished_at < RETRY_AFTER
        if r.trigger == "schedule" and r.status == "failed" and r.error != INTERRUPTED and recent:
            return True
    return False


class Scheduler:
    """Runs the daily job on `schedule`; `clock` tells the time (tests move it)."""

    def __init__(
        self,
        jobs: Jobs,
        schedule: Schedule,
        *,
        clock: Callable[[], datetime] = utc_now,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.jobs = jobs
        self.schedule = schedule
        self.clock = clock
        self.poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: datetime | None = None) -> Run | None:
        """Run the job if the latest scheduled day before `now` needs it; the run, if one ran."""
        ws = self.jobs.ws
        as_of, _ = due(self.schedule, now or self.clock())
        with ws.db.connect() as conn:
            if settled(list_runs(conn=conn, as_of=as_of)):
                return None
        try:
            claim = claim_run(ws, as_of, trigger="schedule", unless=settled)
        except RunBusy:
            return None
        if claim is None:
            return None
        log.info("scheduled run %s as of %s", claim.run.run_id, as_of)
        self.jobs.execute(claim)
        with ws.db.connect() as conn:
            return get_run(conn=conn, run_id=claim.run.run_id)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("the scheduler's tick failed; trying again in %ss", self.poll)
            now = self.clock()
            wait = (next_time(self.schedule, now) - now).total_seconds()
            self._stop.wait(min(self.poll, max(wait, 0.05)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The app's lifespan: the scheduler runs while the app serves (when config.yaml has an
    enabled schedule), and so does the real-time trigger worker (service/triggers.py, unless
    turned off); the messages API's read model is loaded before the first request; shutdown waits a while for runs and the batch of triggers in progress."""
    jobs: Jobs = app.state.jobs
    triggers: Triggers = app.state.triggers
    schedule = jobs.schedule
    scheduler = None
    if schedule is not None and schedule.enabled:
        scheduler = Scheduler(jobs, schedule)
        scheduler.start()
    triggers.start()
    await run_in_threadpool(messages.start, app)
    try:
        yield
    finally:
        await run_in_threadpool(messages.stop, app)
        await run_in_threadpool(triggers.stop)
        if scheduler is not None:
            await run_in_threadpool(scheduler.stop)
        await run_in_threadpool(jobs.join, STOP_SECONDS)
