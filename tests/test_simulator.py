"""The simulated company: reproducible, shaped like data-contract.md, with the properties it claims."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cli_runner import run
from upsell.config.catalog import parse_catalog
from upsell.domain.catalog import BUSINESS_MODELS as MODELS
from upsell.simulator import responses
from upsell.simulator.files import FILES, simulate
from upsell.simulator.population import RESPONSE_TYPES
from upsell.simulator.usage import limit_of
from upsell.simulator.world import SimConfig, SimulationError, World


def to_the_end(world: World) -> pa.Table:
    """Advance `world` to its last day; the events of the days it went through."""
    return pa.concat_tables(_collect(world))


@pytest.fixture(scope="module")
def year() -> tuple[World, pa.Table]:
    world = World(SimConfig(accounts=3000, months=12, seed=7))
    return world, to_the_end(world)


def plan_rows(world: World) -> dict[str, np.ndarray]:
    r = world.rows
    n = r.n
    is_plan = r.item[:n] < world.items.n_plans
    return {
        "account": r.account[:n][is_plan],
        "item": r.item[:n][is_plan],
        "start": r.start[:n][is_plan],
        "end": r.end[:n][is_plan],
    }


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    config = SimConfig(accounts=300, months=3, seed=11)
    first = simulate(config, tmp_path / "a")
    simulate(config, tmp_path / "b")
    simulate(SimConfig(accounts=300, months=3, seed=12), tmp_path / "c")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "events.parquet").read_bytes() != (
        tmp_path / "c" / "events.parquet"
    ).read_bytes()
    manifest = json.loads((tmp_path / "a" / "simulation.json").read_text())
    assert manifest["rows"] == {
        "accounts": 300,
        "subscriptions": first.subscriptions,
        "events": first.events,
    }
    assert first.events == pq.read_metadata(first.events_file).num_rows > 0


def test_simulate_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    config = SimConfig(accounts=50, months=1)
    simulate(config, tmp_path)
    with pytest.raises(SimulationError, match=r"already holds catalog\.yaml"):
        simulate(config, tmp_path)
    simulate(config, tmp_path, force=True)
    assert not list(tmp_path.glob(".*partial"))


def test_files_have_the_columns_of_the_data_contract(tmp_path: Path) -> None:
    from upsell.ingest.rows import COLUMNS

    done = simulate(SimConfig(accounts=200, months=2), tmp_path)
    for kind, path in (
        ("accounts", done.accounts_file),
        ("subscriptions", done.subscriptions_file),
        ("events", done.events_file),
    ):
        names = pq.read_schema(path).names
        assert names == [c.name for c in COLUMNS[kind]], kind  # type: ignore[index]
    catalog = parse_catalog(done.catalog.read_text(), str(done.catalog))
    assert catalog.warnings == ()


def test_message_ids_are_unique_and_events_are_in_time_order(year: tuple[World, pa.Table]) -> None:
    _, events = year
    assert pc.count_distinct(events["message_id"]).as_py() == events.num_rows
    stamps = events["timestamp"].to_numpy()
    assert (np.diff(stamps.astype("int64")) >= 0).all()


def test_reserved_events_of_the_contract_occur(year: tuple[World, pa.Table]) -> None:
    _, events = year
    names = set(events["event"].to_pylist())
    assert {
        "Feature Blocked",
        "Limit Reached",
        "Downgrade Requested",
        "Cancel Requested",
        "Survey Answered",
        "Support Ticket Opened",
        "Support Ticket Closed",
        "Payment Failed",
    } <= names
    surveys = events.filter(pc.equal(events["event"], "Survey Answered"))
    scores = [json.loads(p)["score"] for p in surveys["properties"].to_pylist()]
    assert min(scores) >= 0 and max(scores) <= 10 and len(set(scores)) > 5


def test_free_to_paid_conversion_is_in_the_calibrated_range(year: tuple[World, pa.Table]) -> None:
    """domain.md S18: freemium-to-paid conversion is 8-20 %; the world without offers sits in it."""
    world, _ = year
    rows = plan_rows(world)
    paid = ~world.items.plan_free[rows["item"]]
    ever_paid = np.zeros(world.config.accounts, bool)
    ever_paid[rows["account"][paid]] = True
    started_free = world.items.plan_free[world.entry_plan]
    mature = world.pop.signup_day < world.config.days // 2
    rate = ever_paid[started_free & mature].mean()
    assert 0.08 <= rate <= 0.20


def test_churn_is_higher_before_activation(year: tuple[World, pa.Table]) -> None:
    world, _ = year
    r = world.rows
    cancelled = np.zeros(world.config.accounts, bool)
    cancelled[r.account[: r.n][r.status[: r.n] == 3]] = True
    paying = ~world.items.plan_free[world.entry_plan] & (
        world.pop.signup_day < world.config.days // 2
    )
    before = cancelled[paying & ~world.activated].mean()
    after = cancelled[paying & world.activated].mean()
    assert before > 1.5 * after


def test_utilisation_never_exceeds_the_limit_and_binds_for_a_minority(
    year: tuple[World, pa.Table],
) -> None:
    world, _ = year
    everyone = np.arange(world.config.accounts)
    for metric in ("seats", "projects"):
        limit = limit_of(world, metric, everyone)
        limited = world.using & np.isfinite(limit)
        utilisation = world.gauge[metric][limited] / limit[limited]
        assert utilisation.max() <= 1.0
        at_limit = (utilisation >= 1.0).mean()
        assert 0.02 < at_limit < 0.5, (metric, at_limit)
        assert 0.1 < np.median(utilisation) < 0.9, metric


def test_plan_changes_end_and_start_at_the_same_instant(year: tuple[World, pa.Table]) -> None:
    world, _ = year
    rows = plan_rows(world)
    order = np.lexsort((rows["start"], rows["account"]))
    account, start, end = rows["account"][order], rows["start"][order], rows["end"][order]
    same = account[1:] == account[:-1]
    changes = same & (end[:-1] == start[1:])
    assert changes.sum() > 50
    # A later row of the same account never overlaps the one before it.
    assert (end[:-1][same] >= 0).all() and (end[:-1][same] <= start[1:][same]).all()


def test_organic_upgrades_happen_when_limits_bind(year: tuple[World, pa.Table]) -> None:
    world, events = year
    rows = plan_rows(world)
    order = np.lexsort((rows["start"], rows["account"]))
    account, item = rows["account"][order], rows["item"][order]
    upgraded = np.unique(account[1:][(account[1:] == account[:-1]) & (item[1:] > item[:-1])])
    hit = events.filter(pc.equal(events["event"], "Limit Reached"))["account_id"]
    limited = {int(a.split("-")[1]) - 1 for a in pc.unique(hit).to_pylist()}
    assert len(upgraded) > 100
    share_limited = np.isin(upgraded, list(limited)).mean()
    assert share_limited > 0.6


# ---------------------------------------------------------------- the environment interface


def offers_for(world: World, accounts: list[int], **extra: Any) -> list[dict[str, Any]]:
    out = []
    for a in accounts:
        plan = int(world.plan[a])
        target = world.items.plans[min(plan + 1, world.items.top_self_serve)].id
        out.append(
            {
                "account_id": world.account_ids[a].as_py(),
                "kind": "upsell",
                "offer_id": f"upsell:{world.items.plans[plan].id}->{target}",
                "item_id": target,
                "from_item_id": world.items.plans[plan].id,
                "channel": "in_app",
                "placement": "modal",
                **extra,
            }
        )
    return out


def table_rows(table: pa.Table, accounts: set[str]) -> list[dict[str, Any]]:
    mask = pc.is_in(table["account_id"], pa.array(sorted(accounts)))
    return table.filter(mask).to_pylist()


def test_a_step_without_decisions_is_the_counterfactual() -> None:
    world = World(SimConfig(accounts=800, months=6, seed=3))
    world.advance(60)
    result = world.step([], days=30)
    other = world.counterfactual()
    assert other.day == world.day == 90
    assert world.subscriptions_table().equals(other.subscriptions_table())
    assert world.accounts_table().equals(other.accounts_table())
    assert result.events.num_rows > 0 and result.offers_accepted == 0


def test_the_counterfactual_differs_only_through_offers() -> None:
    world = World(SimConfig(accounts=1500, months=8, seed=5))
    world.advance(120)
    candidates = np.flatnonzero(
        world.using
        & (world.pressure > 0.5)
        & (world.plan >= 0)
        & (world.plan < world.items.top_self_serve)
    )
    offered = [int(a) for a in candidates[:150]]
    assert len(offered) > 50
    events: list[pa.Table] = []
    result = world.step(offers_for(world, offered, trial_days=14), days=1)
    events.append(result.events)
    world.advance(world.config.days - world.day, events.append)
    factual_events = pa.concat_tables(events)
    other = World(SimConfig(accounts=1500, months=8, seed=5))
    other.advance(120)
    cf_events = pa.concat_tables([t for t in _collect(other)])

    offered_ids = {world.account_ids[a].as_py() for a in offered}
    untouched = set(world.account_ids.to_pylist()) - offered_ids
    sample = set(sorted(untouched)[::5])
    assert table_rows(factual_events, sample) == table_rows(cf_events, sample)
    assert table_rows(world.subscriptions_table(), sample) == table_rows(
        other.subscriptions_table(), sample
    )
    assert table_rows(world.subscriptions_table(), offered_ids) != table_rows(
        other.subscriptions_table(), offered_ids
    )
    assert result.offers_accepted > 0
    assert world.counterfactual().mrr().sum() == pytest.approx(other.mrr().sum())
    assert world.mrr().sum() > other.mrr().sum()  # well-aimed offers earn incremental MRR


def _collect(world: World) -> list[pa.Table]:
    tables: list[pa.Table] = []
    world.advance(world.config.days - world.day, tables.append)
    return tables


def test_step_returns_what_changed() -> None:
    world = World(SimConfig(accounts=500, months=4, seed=9))
    world.advance(30)
    result = world.step([], days=7)
    assert world.day == 37
    days = pc.subtract(result.events["timestamp"], pa.scalar(0, pa.timestamp("us", tz="UTC")))
    assert result.events.num_rows > 0 and days is not None
    first = world.config.start.toordinal() + 30
    stamps = {d.toordinal() for d in pc.cast(result.events["timestamp"], pa.date32()).to_pylist()}
    assert stamps <= set(range(first, first + 7))
    assert set(result.accounts["account_id"].to_pylist()) <= set(
        world.accounts_table()["account_id"].to_pylist()
    )


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        ({"account_id": "a-99999", "kind": "upsell"}, "unknown account"),
        ({"account_id": "a-00001", "kind": "bribe"}, "kind must be one of"),
        ({"account_id": "a-00001", "kind": "upsell", "item_id": "gold"}, "not in the catalog"),
        ({"account_id": "a-00001", "kind": "upsell", "item_id": "pro"}, "channel must be one of"),
        ({"account_id": "a-00500", "kind": "save", "channel": "email"}, "has not signed up yet"),
        ("not a decision", "expected a JSON object"),
    ],
)
def test_bad_decisions_are_refused_with_their_position(decision: Any, message: str) -> None:
    world = World(SimConfig(accounts=500, months=2))
    world.advance(2)
    with pytest.raises(SimulationError, match=rf"decision 1: .*{message}"):
        world.step([decision])


# ---------------------------------------------------------------- the hidden response model


@pytest.fixture(scope="module")
def mid_year() -> World:
    world = World(SimConfig(accounts=2000, months=12, seed=1))
    world.advance(200)
    return world


def _offer(world: World, a: int, **changes: Any) -> responses.Offer:
    base = offers_for(world, [a])[0]
    base.update(changes)
    return responses.Offer.parse(base, position=0, world=world)


def _account(world: World, rtype: str, *, need: bool) -> int:
    code = [name for name, _ in RESPONSE_TYPES].index(rtype)
    ok = (
        world.using
        & world.activated
        & (world.pop.response_type == code)
        & (world.plan >= 0)
        & (world.plan < world.items.top_self_serve)
        & ((world.pressure > 0.1) if need else (world.pressure == 0))
    )
    return int(np.flatnonzero(ok)[0])


def test_context_trials_and_need_raise_acceptance_fatigue_and_repeats_lower_it(
    mid_year: World,
) -> None:
    w = mid_year
    a = _account(w, "persuadable", need=True)
    p = lambda **kw: responses.probability(w, _offer(w, a, **kw), repeats=0)[0]  # noqa: E731
    modal = p()
    assert 0.0 < modal < 1.0
    assert modal > p(channel="email")
    assert p(trial_days=14) > modal
    assert responses.probability(w, _offer(w, a), repeats=3)[0] < modal
    calm = _account(w, "persuadable", need=False)
    assert responses.probability(w, _offer(w, calm), repeats=0)[0] < modal
    before = w.contacts[a].copy()
    w.contacts[a] = w.day - 1
    try:
        assert p() < modal
    finally:
        w.contacts[a] = before


def test_response_types_order_acceptance(mid_year: World) -> None:
    w = mid_year
    a = _account(w, "persuadable", need=True)
    kept = w.pop.response_type[a]
    probs = {}
    try:
        for code, (rtype, _) in enumerate(RESPONSE_TYPES):
            w.pop.response_type[a] = code
            probs[rtype] = responses.probability(w, _offer(w, a), repeats=0)[0]
    finally:
        w.pop.response_type[a] = kept
    assert probs["sure_thing"] > probs["persuadable"] > probs["lost_cause"] > probs["sleeping_dog"]


def test_a_cross_sell_above_the_price_anchor_converts_far_worse(mid_year: World) -> None:
    w = mid_year
    product = w.items.products[0]
    fits = int(np.flatnonzero(w.using & w.activated & (w.plan == 1) & (w.pop.goal == 0))[0])
    rich = int(np.flatnonzero(w.using & w.activated & (w.plan == 2) & (w.pop.goal == 0))[0])
    offer = {"kind": "cross_sell", "item_id": product.id, "offer_id": f"cross_sell:{product.id}"}
    cheap_share = responses.probability(w, _offer(w, rich, **offer), repeats=0)[0]
    dear_share = responses.probability(w, _offer(w, fits, **offer), repeats=0)[0]
    # $39 is 39 % of Pro's... no: 39 % of $99 is under the anchor for Pro, 134 % of $29 for Basic.
    assert dear_share < cheap_share / 2


@pytest.mark.parametrize("model", MODELS)
def test_every_business_model_simulates_with_a_clean_catalog(model: str, tmp_path: Path) -> None:
    done = simulate(SimConfig(accounts=300, months=3, model=model), tmp_path)  # type: ignore[arg-type]
    assert parse_catalog(done.catalog.read_text(), "x").catalog.business_model == model
    assert parse_catalog(done.catalog.read_text(), "x").warnings == ()
    assert done.events > 300 and done.subscriptions >= 300


# ---------------------------------------------------------------- the commands


def test_init_demo_builds_and_demo_summarises_a_workspace(
    demo_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`upsell init WS --demo` (the shared demo company of tests/conftest.py, copied) keeps the
    simulated files in WS/data, and `upsell demo` summarises every account and event it imported."""
    monkeypatch.delenv("UPSELL_DATABASE_URL", raising=False)
    ws = demo_workspace
    assert (ws / "data" / "events.parquet").exists()
    manifest = json.loads((ws / "data" / "simulation.json").read_text())
    summary = run("demo", "-w", ws, "--json")
    assert summary.exit_code == 0, summary.output
    data = json.loads(summary.stdout)
    accounts = manifest["config"]["accounts"]  # what init --demo was asked for
    assert (
        data["accounts"] == accounts == pq.read_metadata(ws / "data" / "accounts.parquet").num_rows
    )
    assert data["events"] == manifest["rows"]["events"]
    assert sum(p["accounts"] for p in data["plans"]) + data["no_plan"] == accounts
    assert float(data["mrr"]) > 0 and data["top_events_30d"]


def test_simulate_command_reports_bad_options_and_existing_files(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    assert run("simulate", "--out", out, "--accounts", 40, "--months", 1).exit_code == 0
    again = run("simulate", "--out", out, "--accounts", 40, "--months", 1)
    assert again.exit_code == 2 and "--force" in again.output
    bad = run("simulate", "--out", out, "--model", "casino")
    assert bad.exit_code == 2 and "--model must be one of" in bad.output
    date = run("simulate", "--out", out, "--start", "2026-13-01")
    assert date.exit_code == 2 and "--start must be a date" in date.output
