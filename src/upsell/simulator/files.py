"""Write a simulated company to disk: catalog.yaml and Parquet files in data-contract.md's shapes.

Events stream to Parquet one row group at a time, so memory stays bounded however many there are.
Every file is written under a temporary name and renamed when the whole run succeeded, so an
interrupted run leaves no half-written data; the same config writes the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from upsell.simulator.world import EVENT_SCHEMA, SimConfig, SimulationError, World

ROW_GROUP_ROWS = 1 << 20
FILES = (
    "catalog.yaml",
    "accounts.parquet",
    "subscriptions.parquet",
    "events.parquet",
    "simulation.json",
)

DayProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Simulated:
    """What a run wrote."""

    folder: Path
    config: SimConfig
    accounts: int
    subscriptions: int
    events: int

    @property
    def catalog(self) -> Path:
        return self.folder / "catalog.yaml"

    @property
    def accounts_file(self) -> Path:
        return self.folder / "accounts.parquet"

    @property
    def subscriptions_file(self) -> Path:
        return self.folder / "subscriptions.parquet"

    @property
    def events_file(self) -> Path:
        return self.folder / "events.parquet"


def _write_table(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)


def simulate(
    config: SimConfig, folder: Path, *, force: bool = False, progress: DayProgress | None = None
) -> Simulated:
    """Simulate `config` from its first to its last day and write the files into `folder`."""
    if folder.exists() and not folder.is_dir():
        raise SimulationError(f"{folder} exists and is not a folder")
    existing = [name for name in FILES if (folder / name).exists()]
    if existing and not force:
        raise SimulationError(
            f"{folder} already holds {', '.join(existing)}; choose another folder or overwrite "
            "them with --force"
        )
    folder.mkdir(parents=True, exist_ok=True)
    temp = {name: folder / f".{name}.partial" for name in FILES}
    try:
        world = World(config)
        events = 0
        buffer: list[pa.Table] = []
        buffered = 0
        with pq.ParquetWriter(temp["events.parquet"], EVENT_SCHEMA, compression="zstd") as writer:

            def flush() -> None:
                nonlocal buffer, buffered
                if buffer:
                    writer.write_table(pa.concat_tables(buffer), row_group_size=ROW_GROUP_ROWS)
                buffer, buffered = [], 0

            def on_events(table: pa.Table) -> None:
                nonlocal buffered, events
                buffer.append(table)
                buffered += table.num_rows
                events += table.num_rows
                if buffered >= ROW_GROUP_ROWS:
                    flush()

            for day in range(config.days):
                world.advance(1, on_events)
                if progress is not None:
                    progress(day + 1, config.days)
            flush()
        accounts = world.accounts_table()
        subscriptions = world.subscriptions_table()
        _write_table(accounts, temp["accounts.parquet"])
        _write_table(subscriptions, temp["subscriptions.parquet"])
        temp["catalog.yaml"].write_text(world.catalog_yaml, "utf-8")
        manifest = {
            "simulator": "upsell",
            "config": {**asdict(config), "start": config.start.isoformat()},
            "days": config.days,
            "end": world.today.isoformat(),
            "rows": {
                "accounts": accounts.num_rows,
                "subscriptions": subscriptions.num_rows,
                "events": events,
            },
        }
        temp["simulation.json"].write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        for name in FILES:
            temp[name].replace(folder / name)
    finally:
        for path in temp.values():
            path.unlink(missing_ok=True)
    return Simulated(
        folder=folder,
        config=config,
        accounts=accounts.num_rows,
        subscriptions=subscriptions.num_rows,
        events=events,
    )
