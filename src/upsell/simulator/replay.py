"""A simulated company run through upsell week by week: decide, let the customers answer, import.

The simulator (`upsell.simulator.world.World`) answers offers by its hidden rules; this module
closes the loop of architecture.md on it: the world is simulated up to a day and imported into a
workspace, then each week `upsell run` decides as of the world's today (`upsell.flows.offers.run_offers`),
the decision lines go to `World.step`, and the week's accounts, subscriptions and events (offer
responses included) are imported before the next run. `upsell demo` builds its company this way, so
that its report has offers, responses, a holdout and their revenue; bench/decisions.py measures the
default playbooks with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from upsell.channels.base import Channel, Delivery, Outcome
from upsell.channels.in_app import InApp
from upsell.domain.catalog import Catalog
from upsell.flows.offers import RunResult, run_offers
from upsell.ingest.importer import FileImport, import_catalog, import_table
from upsell.simulator.world import EVENT_SCHEMA, StepResult, World
from upsell.workspace import Workspace


class SimulatedDelivery:
    """The email, CSM-task and webhook channel of a simulated company: the simulated customer
    receives the decision line itself (through `World.step`), so every delivery is ``sent``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def deliver(self, delivery: Delivery) -> Outcome:
        return Outcome("sent")

    def problems(self) -> list[str]:
        return []


def simulated_channels() -> dict[str, Channel]:
    return {
        "in_app": InApp(),
        **{n: SimulatedDelivery(n) for n in ("email", "csm_task", "webhook")},
    }


class Importer:
    """Writes Arrow tables to new Parquet files in `data` and imports them (strictly: a simulated
    company's rows are always valid, a reject is a bug)."""

    def __init__(self, ws: Workspace, data: Path, catalog: Catalog) -> None:
        self.ws, self.data, self.catalog = ws, data, catalog
        self.results: list[FileImport] = []

    def __call__(self, kind: str, table: pa.Table | Path, tag: str) -> None:
        if isinstance(table, Path):
            path = table
        else:
            if table.num_rows == 0:
                return
            path = self.data / f"{kind}-{tag}.parquet"
            pq.write_table(table, path, compression="zstd")
        done = import_table(
            db=self.ws.db,
            kind=kind,  # type: ignore[arg-type]
            path=path,
            catalog=self.catalog,
            strict=True,
        )
        self.results.append(done)
        if done.rejected:
            raise RuntimeError(f"{path.name}: {done.rejected} simulated rows rejected (a bug)")


def warm_up(world: World, days: int, ws: Workspace, data: Path) -> Importer:
    """Simulate `days` days with no offers and import everything into `ws` (files in `data`);
    the importer goes on importing into `ws` with the catalog it imported."""
    data.mkdir(parents=True, exist_ok=True)
    events_file = data / "events-w00.parquet"
    with pq.ParquetWriter(events_file, EVENT_SCHEMA, compression="zstd") as writer:
        world.advance(days, writer.write_table)
    (data / "catalog.yaml").write_text(world.catalog_yaml, "utf-8")
    catalog = import_catalog(db=ws.db, path=data / "catalog.yaml").loaded.catalog
    load = Importer(ws, data, catalog)
    load("accounts", world.accounts_table(), "w00")
    load("subscriptions", world.subscriptions_table(), "w00")
    load("events", events_file, "w00")
    return load


@dataclass(frozen=True)
class Week:
    day: date
    result: RunResult
    step: StepResult


def replay_weeks(
    world: World,
    ws: Workspace,
    load: Importer,
    *,
    weeks: int,
    on_week: Callable[[Week], None] | None = None,
) -> list[Week]:
    """`weeks` weekly runs of the workspace's playbooks on the world, each imported back."""
    channels = simulated_channels()
    done = []
    for n in range(weeks):
        day = world.today
        result = run_offers(ws, day, channels=channels)
        step = world.step(result.lines, days=7)
        tag = f"w{n + 1:02d}"
        load("accounts", step.accounts, tag)
        load("subscriptions", step.subscriptions, tag)
        load("events", step.events, tag)
        week = Week(day, result, step)
        done.append(week)
        if on_week is not None:
            on_week(week)
    return done
