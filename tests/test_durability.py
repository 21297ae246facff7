"""An event acknowledged with 200 is in the store (docs/service.md, "Durability"): load from a second
process, the server killed with SIGKILL mid-load and restarted, every acknowledged messageId stored
exactly once and no batch half-stored; on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from conftest import Served

LOAD = Path(__file__).parent / "segment_load.py"
BATCHES, SIZE = 400, 50


def _stored(database_url: str) -> Counter[str]:
    """How many times each messageId is stored, in `events` and in `pending_events` together."""
    db = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with db.connect() as conn:
            ids = [
                *conn.exec_driver_sql("SELECT message_id FROM events").scalars(),
                *conn.exec_driver_sql("SELECT message_id FROM pending_events").scalars(),
            ]
    finally:
        db.dispose()
    return Counter(ids)


def _acknowledged(log: Path) -> dict[int, list[str]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return {entry["batch"]: entry["ids"] for entry in map(json.loads, lines)}


def test_every_acknowledged_event_survives_a_sigkill_exactly_once(
    served: Served, tmp_path: Path
) -> None:
    log = tmp_path / "acknowledged.jsonl"
    load = subprocess.Popen(
        [sys.executable, str(LOAD), served.url, served.write_key, str(log), str(BATCHES), str(SIZE)]
    )
    try:
        deadline = time.monotonic() + 60
        while len(_acknowledged(log)) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_acknowledged(log)) >= 20, "the load did not get going"
        served.server.stop(signal.SIGKILL)
        killed_after = len(_acknowledged(log))
        per_batch = Counter(i.split("-")[0] for i in _stored(served.store_url))
        assert set(per_batch.values()) <= {SIZE}, f"a batch is half-stored: {per_batch}"
        assert len(per_batch) >= killed_after
        served.server.start()
        assert load.wait(timeout=240) == 0
    finally:
        if load.poll() is None:
            load.kill()
    acknowledged = _acknowledged(log)
    assert killed_after < BATCHES, "the server was killed after the load had finished"
    assert sorted(acknowledged) == list(range(BATCHES))
    stored = _stored(served.store_url)
    assert max(stored.values()) == 1
    for batch, ids in acknowledged.items():
        assert all(stored[i] == 1 for i in ids), f"batch {batch} acknowledged but not all stored"
    assert sum(stored.values()) == BATCHES * SIZE
