"""The daily job inside `upsell serve` (docs/service.md, "Scheduler"): config.yaml's schedule, the
scheduler's decisions with a clock the test moves, and two live servers on one database (SQLite
and PostgreSQL) that run each scheduled day once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from cli_runner import run
from companies import PLAYBOOKS, demo_company_on
from live_server import LiveServer
from upsell.config.workspace import SCHEDULE_KEYS, Schedule, parse_config
from upsell.errors import ConfigError
from upsell.flows.runs import INTERRUPTED, run_job
from upsell.service.scheduler import Jobs, Scheduler, due, next_time
from upsell.settings import Settings
from upsell.store.runs import Run, create_run, list_runs, set_run_status
from upsell.workspace import Workspace

PARIS = Schedule(at=datetime.strptime("06:00", "%H:%M").time(), timezone="Europe/Paris")


def test_config_yaml_schedules_the_daily_job() -> None:
    config = parse_config('schedule:\n  time: "06:00"\n  timezone: Europe/Paris\n')
    assert config.schedule == PARIS
    off = parse_config('schedule: {time: "23:59:30", enabled: false}\n').schedule
    assert off is not None and (off.at.second, off.timezone, off.enabled) == (30, "UTC", False)
    assert parse_config("opportunities: {}\n").schedule is None, "no section, no scheduled job"


def test_every_schedule_key_is_documented() -> None:
    text = (Path(__file__).parent.parent / "docs" / "service.md").read_text()
    for key in SCHEDULE_KEYS:
        assert f"| `{key}` |" in text, key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("schedule:\n  time: 6\n", "config.yaml:2: schedule.time: must be a time of day HH:MM"),
        ('schedule:\n  time: "24:00"\n', "schedule.time: must be a time of day"),
        ("schedule:\n  timezone: UTC\n", "config.yaml:1: schedule.time: schedule needs 'time'"),
        (
            'schedule:\n  time: "06:00"\n  timezone: Mars/Olympus\n',
            "config.yaml:3: schedule.timezone: must be a time zone such as UTC or Europe/Paris, "
            "got 'Mars/Olympus'",
        ),
        ('schedule:\n  time: "06:00"\n  enabled: yes please\n', "schedule.enabled: must be true"),
        ('schedule:\n  time: "06:00"\n  at: "07:00"\n', "config.yaml:3: schedule.at: unknown key"),
    ],
)
def test_a_bad_schedule_is_refused_with_file_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(text)
    assert expected in str(refused.value)


def test_the_due_day_is_the_latest_scheduled_time_before_now_in_the_schedules_time_zone() -> None:
    # 06:00 in Paris is 04:00 UTC in April (summer time).
    assert due(PARIS, datetime(2026, 4, 15, 3, 59, tzinfo=UTC))[0] == date(2026, 4, 14)
    day, at = due(PARIS, datetime(2026, 4, 15, 4, 0, tzinfo=UTC))
    assert (day, at.astimezone(UTC)) == (date(2026, 4, 15), datetime(2026, 4, 15, 4, tzinfo=UTC))
    assert next_time(PARIS, datetime(2026, 4, 15, 4, 0, tzinfo=UTC)) == datetime(
        2026, 4, 16, 4, tzinfo=UTC
    )
    # 06:00 in Paris is 05:00 UTC in January.
    assert next_time(PARIS, datetime(2026, 1, 10, 4, 59, tzinfo=UTC)).astimezone(UTC).hour == 5


@pytest.fixture
def workspace(demo_workspace: Path) -> Iterator[Workspace]:
    (demo_workspace / "playbooks.yaml").write_text(PLAYBOOKS)
    ws = Workspace.open(demo_workspace, Settings(database_url=None))
    try:
        yield ws
    finally:
        ws.close()


def _runs(ws: Workspace, day: str) -> list[Run]:
    with ws.db.connect() as conn:
        return list_runs(conn=conn, as_of=date.fromisoformat(day))


def test_a_tick_runs_the_due_day_once_catches_up_and_retries_later(workspace: Workspace) -> None:
    ws = workspace
    now = datetime(2026, 4, 15, 3, 0, tzinfo=UTC)
    scheduler = Scheduler(Jobs(ws), PARIS, clock=lambda: now)
    first = scheduler.tick()
    assert first is not None, "before 06:00 the day before is due: caught up"
    assert (str(first.as_of), first.trigger, first.status) == (
        "2026-04-14",
        "schedule",
        "succeeded",
    )
    assert first.summary is not None and first.summary["accounts"] > 0
    assert scheduler.tick() is None, "a day that succeeded is not run again"

    now = datetime(2026, 4, 15, 4, 30, tzinfo=UTC)
    assert scheduler.tick() is not None and _runs(ws, "2026-04-15")[0].status == "succeeded"

    now = datetime(2026, 4, 16, 4, 30, tzinfo=UTC)
    run_job(ws, date(2026, 4, 16), trigger="cli")
    assert scheduler.tick() is None, "a run from the command line counts"

    # A run that fails (a channel nobody set up) is recorded and not tried again at once.
    (ws.folder / "playbooks.yaml").write_text(
        PLAYBOOKS.replace("in_app, placement: banner", "email, placement: email")
    )
    now = datetime(2026, 4, 17, 4, 30, tzinfo=UTC)
    failed = scheduler.tick()
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and "channel email" in failed.error
    assert scheduler.tick() is None, "retried only after an hour"

    # A run a dead process left running is marked interrupted and the day is caught up.
    (ws.folder / "playbooks.yaml").write_text(PLAYBOOKS)
    with ws.db.begin() as conn:
        stale = create_run(conn=conn, as_of=date(2026, 4, 18), trigger="schedule", at=now)
        set_run_status(conn=conn, run_id=stale.run_id, status="running", at=now)
    now = datetime(2026, 4, 18, 4, 30, tzinfo=UTC)
    assert scheduler.tick() is not None
    newest, oldest = _runs(ws, "2026-04-18")
    assert (newest.status, oldest.status, oldest.error) == ("succeeded", "failed", INTERRUPTED)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_servers_on_one_database_run_each_scheduled_day_once(
    kind: str, demo_company: Path, tmp_path: Path
) -> None:
    """Both servers start after yesterday's time (caught up at start) and before today's, a few
    seconds ahead: each day is run once, by one of them; a restart runs nothing again."""
    with demo_company_on(kind, demo_company, tmp_path) as company:
        start = datetime.now(UTC)
        at = start + timedelta(seconds=10)
        schedule = Schedule(at=at.time().replace(microsecond=0))
        text = at.strftime("%H:%M:%S")
        (company.folder / "config.yaml").write_text(f'schedule:\n  time: "{text}"\n')
        days = sorted({due(schedule, start)[0], due(schedule, at + timedelta(seconds=1))[0]})
        assert len(days) == 2
        db = sa.create_engine(company.database_url, poolclass=sa.NullPool)
        servers = [LiveServer(company.folder, company.env) for _ in range(2)]
        try:
            for server in servers:
                server.start()

            def runs() -> list[Run]:
                with db.connect() as conn:
                    return list_runs(conn=conn)

            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                done = {r.as_of for r in runs() if r.status == "succeeded"}
                if set(days) <= done:
                    break
                time.sleep(0.5)
            time.sleep(2)  # room for a second run, if one were to happen
            found = runs()
            assert sorted((r.as_of, r.trigger, r.status) for r in found) == [
                (day, "schedule", "succeeded") for day in days
            ], [server.output() for server in servers]
            servers[0].stop()
            servers[0].start()
            time.sleep(2)
            assert len(runs()) == 2, "a restart runs no day twice"
            for server in servers:
                server.stop()  # SIGTERM: the scheduler stops with the server
                assert "Traceback" not in server.output(), server.output()
        finally:
            for server in servers:
                if server.process is not None:
                    server.stop(9)
            db.dispose()


def test_upsell_serve_refuses_a_bad_schedule_before_it_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPSELL_DATABASE_URL", raising=False)
    assert run("init", tmp_path / "ws").exit_code == 0
    (tmp_path / "ws" / "config.yaml").write_text("schedule:\n  time: 6\n")
    refused = run("serve", "-w", tmp_path / "ws", "--port", "1")
    assert refused.exit_code == 2
    assert "config.yaml:2: schedule.time: must be a time of day HH:MM" in refused.stderr
