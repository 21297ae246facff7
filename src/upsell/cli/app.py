"""The `upsell` command line (data-contract.md, "The command line").

Exit status: 0 success; 1 the command ran but found invalid input (rejects written); 2 usage or
configuration error. Tables and progress go to stderr; machine-readable output (``--json``) to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from upsell import __version__
from upsell.domain.catalog import Catalog
from upsell.domain.money import Money, format_money
from upsell.errors import CatalogError, ImportRejected, PlaybooksError, UpsellError
from upsell.settings import Settings
from upsell.simulator.files import Simulated, simulate
from upsell.simulator.profiles import MODELS
from upsell.simulator.world import SimConfig
from upsell.sources.importer import FileImport, import_catalog, import_table
from upsell.sources.importer import Progress as ProgressCallback
from upsell.sources.rows import Kind
from upsell.store.summary import DataSummary, summarize
from upsell.workspace import Workspace

if TYPE_CHECKING:
    from upsell.domain.playbooks import Playbooks
    from upsell.pipeline import OpportunityRun
    from upsell.runs import RunResult
    from upsell.templates import MessageTemplates

EXIT_OK, EXIT_INVALID_INPUT, EXIT_USAGE = 0, 1, 2
PROGRESS_MIN_BYTES = 4 << 20
DEMO_WORKSPACE = Path("demo-workspace")
DEMO_DATA = "data"
#: The demo company's last weeks are replayed through weekly runs, so that its report has offers.
DEMO_WEEKS = 8

app = typer.Typer(
    name="upsell",
    help=(
        "upsell finds which customers are ready for an upgrade, an add-on or a complementary "
        "product, decides the one offer worth making, and measures what it earned.\n\n"
        "Start with `upsell init DIR`, then `upsell import -w DIR --catalog catalog.yaml "
        "--accounts accounts.csv --subscriptions subscriptions.csv --events events.jsonl`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

err = Console(stderr=True)

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        metavar="DIR",
        envvar="UPSELL_WORKSPACE",
        help="Workspace folder (default: the current folder).",
        show_default=False,
    ),
]


def _engine_name(value: str) -> str:
    from upsell.engine.backends import BACKENDS

    if value not in BACKENDS:
        raise typer.BadParameter(f"must be one of {', '.join(BACKENDS)}, got {value!r}")
    return value


EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="NAME",
        callback=_engine_name,
        help="Engine back end: duckdb | pyspark.",
    ),
]
RebuildOption = Annotated[
    bool, typer.Option("--rebuild", help="Rebuild the daily rollups from all events.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"upsell {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """upsell: from usage signal to offer to measured revenue."""


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn upsell's errors into a message on stderr and the documented exit status."""
    try:
        yield
    except CatalogError as exc:
        err.print("[bold red]error:[/] the catalog is invalid:", highlight=False)
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except PlaybooksError as exc:
        err.print("[bold red]error:[/] the playbooks are invalid:", highlight=False)
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except ImportRejected as exc:
        raise _fail(str(exc), EXIT_INVALID_INPUT) from None
    except UpsellError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _open(workspace: Path | None) -> Workspace:
    settings = Settings()
    return Workspace.open(workspace or settings.workspace, database_url=settings.database_url)


AccountsOption = Annotated[
    int, typer.Option("--accounts", metavar="N", min=1, help="Number of simulated accounts.")
]
MonthsOption = Annotated[
    int,
    typer.Option("--months", metavar="M", min=1, max=120, help="Months of history to simulate."),
]
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        metavar="MODEL",
        help=f"Business model of the simulated company: {' | '.join(MODELS)}.",
    ),
]
SeedOption = Annotated[
    int,
    typer.Option(
        "--seed", metavar="S", min=0, help="Random seed; the same seed gives the same files."
    ),
]
StartOption = Annotated[
    str,
    typer.Option(
        "--start", metavar="DATE", help="First day of the simulated history (YYYY-MM-DD)."
    ),
]


def _sim_config(accounts: int, months: int, model: str, seed: int, start: str) -> SimConfig:
    if model not in MODELS:
        raise _fail(f"--model must be one of {', '.join(MODELS)}, got {model!r}", EXIT_USAGE)
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise _fail(
            f"--start must be a date such as 2025-11-01, got {start!r}", EXIT_USAGE
        ) from None
    return SimConfig(accounts=accounts, months=months, model=model, seed=seed, start=first)


def _simulate(config: SimConfig, folder: Path, *, force: bool = False) -> Simulated:
    columns = (TextColumn("simulating {task.fields[when]}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("simulate", total=config.days, when=config.start.isoformat())

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, when=(config.start + timedelta(days=done)).isoformat())

        done = simulate(config, folder, force=force, progress=progress)
    err.print(
        f"Simulated {config.model} company (seed {config.seed}, {config.months} months from "
        f"{config.start}): {done.accounts:,} accounts, {done.subscriptions:,} subscription rows, "
        f"{done.events:,} events in {folder}.",
        highlight=False,
        soft_wrap=True,
    )
    return done


def _build_demo(directory: Path, config: SimConfig, weeks: int = 0) -> None:
    """A new workspace in `directory` filled with a simulated company (files kept in data/); with
    `weeks`, its last weeks are replayed through `upsell run` (upsell.replay)."""
    if weeks:
        _replay_demo(directory, config, weeks)
        return
    ws = Workspace.create(directory, database_url=Settings().database_url)
    try:
        data = _simulate(config, directory / DEMO_DATA, force=True)
        done = import_catalog(engine=ws.engine, path=data.catalog)
        catalog = done.loaded.catalog
        results = []
        for kind, path in (
            ("accounts", data.accounts_file),
            ("subscriptions", data.subscriptions_file),
            ("events", data.events_file),
        ):
            with _progress(path, always=True) as progress:
                results.append(
                    import_table(
                        engine=ws.engine,
                        kind=kind,  # type: ignore[arg-type]
                        path=path,
                        catalog=catalog,
                        strict=True,
                        progress=progress,
                    )
                )
        _print_results(results)
        if any(r.rejected for r in results):
            raise _fail(
                "the simulated data did not import cleanly (a bug in upsell)", EXIT_INVALID_INPUT
            )
    finally:
        ws.close()


def _replay_demo(directory: Path, config: SimConfig, weeks: int) -> None:
    from upsell.engine.backends import Engine
    from upsell.replay import Week, replay_weeks, warm_up
    from upsell.simulator.world import World

    warm = config.days - weeks * 7
    if warm < 1:
        raise _fail(f"--weeks {weeks} do not fit in the {config.days} simulated days", EXIT_USAGE)
    ws = Workspace.create(directory, database_url=Settings().database_url)
    engine = Engine("duckdb")
    try:
        world = World(config)
        with err.status(f"Simulating the first {warm} days of {config.accounts:,} accounts"):
            catalog, load = warm_up(world, warm, ws, directory / DEMO_DATA)

        def report(week: Week) -> None:
            err.print(
                f"  week of {week.day}: {len(week.result.lines):,} offers, "
                f"{len(week.result.held_out):,} held out, {week.step.offers_accepted:,} accepted",
                highlight=False,
            )

        err.print(
            f"Replaying the last {weeks} weeks: each week `upsell run` decides, the simulated "
            "customers answer, the week is imported.",
            highlight=False,
        )
        with err.status("Running the weeks"):
            replay_weeks(world, ws, catalog, load, weeks=weeks, engine=engine, on_week=report)
    finally:
        engine.close()
        ws.close()


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder for the new workspace (created if missing).")
    ],
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Fill the workspace with a simulated company (see `upsell simulate`)."
        ),
    ] = False,
    accounts: AccountsOption = 5000,
    months: MonthsOption = 12,
    model: ModelOption = "saas",
    seed: SeedOption = 0,
    start: StartOption = "2025-11-01",
    weeks: Annotated[
        int,
        typer.Option(
            "--weeks",
            metavar="W",
            min=0,
            help="Replay the company's last W weeks through weekly `upsell run`s (with --demo).",
        ),
    ] = 0,
) -> None:
    """Create a new, empty workspace in DIRECTORY (with --demo: a simulated company in it).

    The workspace keeps its data in DIRECTORY/upsell.db (SQLite), or in the database named by
    UPSELL_DATABASE_URL (e.g. postgresql+psycopg://user@host/db) when that is set. With --demo the
    simulated files are kept in DIRECTORY/data and imported; --accounts, --months, --model, --seed
    and --start shape the company and are ignored without --demo. --weeks W simulates all but the
    last W weeks, then runs the default playbooks each week while the simulated customers answer
    (offers, responses, a holdout: what `upsell report` measures).
    """
    if demo:
        config = _sim_config(accounts, months, model, seed, start)
        with _errors():
            _build_demo(directory, config, weeks)
        err.print(
            f"Created demo workspace {directory}. Next: upsell demo -w {directory}", highlight=False
        )
        return
    with _errors():
        ws = Workspace.create(directory, database_url=Settings().database_url)
        ws.close()
    err.print(
        f"Created workspace {directory} (database: {ws.shown_url}).",
        highlight=False,
        soft_wrap=True,
    )
    err.print(
        f"Next: upsell import -w {directory} --catalog catalog.yaml --accounts accounts.csv "
        "--subscriptions subscriptions.csv --events events.jsonl",
        highlight=False,
        soft_wrap=True,
    )


@app.command("simulate")
def simulate_(
    out: Annotated[
        Path,
        typer.Option(
            "--out", metavar="DIR", help="Folder to write the files into.", show_default=False
        ),
    ],
    accounts: AccountsOption = 5000,
    months: MonthsOption = 12,
    model: ModelOption = "saas",
    seed: SeedOption = 0,
    start: StartOption = "2025-11-01",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files a previous run wrote.")
    ] = False,
) -> None:
    """Write a simulated company's catalog and data files into DIR, without importing them.

    DIR receives catalog.yaml, accounts.parquet, subscriptions.parquet, events.parquet (the shapes of
    docs/data-formats.md) and simulation.json (the settings and row counts). The same settings always
    write the same bytes. How the simulated customers behave is described in docs/simulator.md.
    """
    config = _sim_config(accounts, months, model, seed, start)
    with _errors():
        _simulate(config, out, force=force)


@app.command()
def demo(
    workspace: Annotated[
        Path,
        typer.Option("--workspace", "-w", metavar="DIR", help="The demo workspace folder."),
    ] = DEMO_WORKSPACE,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
) -> None:
    """Run the main job on the demo company, building the demo workspace first if it is missing.

    The demo company is the simulator's default SaaS company (5,000 accounts, 12 months, seed 0);
    use `upsell init DIR --demo` for another size, model or seed and pass its folder with -w. Today
    the main job imports the data, summarises it (accounts, MRR, plan mix, top usage), finds the
    opportunities the day after its last event (the top ten by expected value) and decides the
    offers the playbooks would make that day (a dry run: nothing is recorded or sent), and writes
    the revenue report (report.html in the workspace folder) with its headline numbers.
    """
    with _errors():
        settings = Settings()
        exists = (
            (workspace / "upsell.db").exists()
            if settings.database_url is None
            else workspace.is_dir()
        )
        if not exists:
            _build_demo(workspace, SimConfig(), DEMO_WEEKS)
        ws = Workspace.open(workspace, database_url=settings.database_url)
        try:
            loaded = ws.catalog()
            if loaded is None:
                raise _fail(
                    f"{workspace} has no catalog; import one or rebuild the demo", EXIT_USAGE
                )
            with ws.engine.connect() as conn:
                summary = summarize(conn=conn, catalog=loaded.catalog)
            day = summary.as_of.date() + timedelta(days=1)
            run = _demo_opportunities(ws, loaded.catalog, day)
            decided = _demo_decisions(ws, loaded.catalog, day)
            best = sorted(
                (o for o in run.opportunities if o.qualified),
                key=lambda o: (-o.priority, o.account_id, o.offer_id),
            )[:10]
            data = _report(None, None, None, None, "duckdb", [o.to_json() for o in best], ws)
            report_file = workspace / "report.html"
            _write_report(data, report_file)
        finally:
            ws.close()
    _print_summary(workspace, summary)
    from upsell.cli.opportunities import print_summary
    from upsell.cli.runs import print_message, print_run

    print_summary(err, run, top=10)
    print_run(err, decided)
    customer = [x for x in decided.lines if x["channel"] in ("in_app", "email")]
    if customer or decided.lines:
        print_message(err, (customer or decided.lines)[0])
    from upsell.cli.reports import print_report

    print_report(err, data)
    err.print(f"\nThe report: {report_file.resolve()}", highlight=False)
    if as_json:
        typer.echo(json.dumps(_summary_dict(summary), indent=2))


def _demo_opportunities(ws: Workspace, catalog: Catalog, as_of: date) -> OpportunityRun:
    """The opportunities the day after the demo's last event."""
    from upsell.engine.backends import Engine
    from upsell.pipeline import find_all, rollups_folder
    from upsell.sources.config import load_config

    engine = Engine("duckdb")
    try:
        with err.status("Computing signals and opportunities"), ws.engine.connect() as conn:
            return find_all(
                engine,
                conn=conn,
                catalog=catalog,
                folder=rollups_folder(ws.folder),
                as_of=as_of,
                policy=load_config(ws.folder).opportunities,
            )
    finally:
        engine.close()


def _demo_decisions(ws: Workspace, catalog: Catalog, as_of: date) -> RunResult:
    """The offers the playbooks would make on the day after the demo's last event (a dry run)."""
    from upsell.engine.backends import Engine
    from upsell.pipeline import rollups_folder
    from upsell.runs import run_offers
    from upsell.sources.config import load_config
    from upsell.templates import MessageTemplates

    playbooks = _playbooks(ws.folder, catalog)
    engine = Engine("duckdb")
    try:
        with err.status("Deciding offers (dry run)"):
            return run_offers(
                engine,
                db=ws.engine,
                folder=rollups_folder(ws.folder),
                catalog=catalog,
                policy=load_config(ws.folder).opportunities,
                playbooks=playbooks,
                templates=MessageTemplates(ws.folder),
                as_of=as_of,
                channels=None,
            )
    finally:
        engine.close()


def _summary_dict(s: DataSummary) -> dict[str, object]:
    return {
        "as_of": s.as_of.isoformat(),
        "accounts": s.accounts,
        "paying_accounts": s.paying_accounts,
        "mrr": str(s.mrr.rounded().amount),
        "currency": s.mrr.currency,
        "plans": [
            {"plan_id": p.plan_id, "accounts": p.accounts, "mrr": str(p.mrr.rounded().amount)}
            for p in s.plans
        ],
        "no_plan": s.no_plan,
        "events": s.events,
        "top_events_30d": [{"event": e, "count": n} for e, n in s.top_events],
    }


def _print_summary(workspace: Path, s: DataSummary) -> None:
    def money(m: Money) -> str:
        return format_money(m.rounded(), "en")

    err.print(
        f"\n[bold]{workspace}[/] as of {s.as_of:%Y-%m-%d %H:%M} UTC: {s.accounts:,} accounts, "
        f"{s.paying_accounts:,} paying, MRR {money(s.mrr)} (ARR {money(s.mrr * 12)}), "
        f"{s.events:,} events.",
        highlight=False,
        soft_wrap=True,
    )
    plans = Table(title="Plan mix", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("plan", "accounts", "share", "MRR"):
        plans.add_column(name, justify="left" if name == "plan" else "right", no_wrap=True)
    with_plan = sum(p.accounts for p in s.plans) or 1
    for p in s.plans:
        plans.add_row(p.plan_id, f"{p.accounts:,}", f"{p.accounts / with_plan:.0%}", money(p.mrr))
    plans.add_row("(none: cancelled)", f"{s.no_plan:,}", "", "")
    err.print(plans)
    usage = Table(
        title="Top usage, last 30 days", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    usage.add_column("event", no_wrap=True)
    usage.add_column("count", justify="right", no_wrap=True)
    for name, n in s.top_events:
        usage.add_row(name, f"{n:,}")
    err.print(usage)


def _as_of(value: str) -> date:
    try:
        return date.fromisoformat(value[:10]) if len(value) >= 10 else date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD") from None


@app.command()
def opportunities(
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            metavar="DATE",
            help="The date to look from (YYYY-MM-DD): the signals see the whole days before it.",
        ),
    ],
    workspace: WorkspaceOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="F",
            help="Write every candidate, qualified or not (.jsonl, .csv or .parquet).",
        ),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option(
            "--account", metavar="ID", help="Explain one account: its signals and every candidate."
        ),
    ] = None,
    top: Annotated[
        int, typer.Option("--top", metavar="N", min=0, help="Rows in the terminal table.")
    ] = 20,
    engine: EngineOption = "duckdb",
    rebuild: RebuildOption = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the candidate lines (JSONL) on stdout.")
    ] = False,
) -> None:
    """Find every account's expansion and retention opportunities as of a date, qualify them and
    explain them (docs/opportunities.md).

    The daily usage rollups are brought up to date first (only events stored since the last run
    are read). A table of the top qualified candidates by expected value goes to stderr.
    """
    from upsell.cli.opportunities import print_account, print_summary, write_lines
    from upsell.engine.backends import Engine
    from upsell.pipeline import find_all, rollups_folder
    from upsell.sources.config import load_config

    day = _as_of(as_of)
    with _errors():
        ws = _open(workspace)
        try:
            loaded = ws.catalog()
            if loaded is None:
                raise _fail(
                    f"{ws.folder} has no catalog yet: import one with `upsell import --catalog F`",
                    EXIT_USAGE,
                )
            config = load_config(ws.folder)
            backend = Engine(engine)
            try:
                with err.status("Computing signals and opportunities"), ws.engine.connect() as conn:
                    run = find_all(
                        backend,
                        conn=conn,
                        catalog=loaded.catalog,
                        folder=rollups_folder(ws.folder),
                        as_of=day,
                        policy=config.opportunities,
                        rebuild=rebuild,
                        account_id=account,
                    )
            finally:
                backend.close()
        finally:
            ws.close()
        lines = [o.to_json() for o in run.opportunities]
        if out is not None:
            n = write_lines(out, lines)
            err.print(f"Wrote {n:,} candidates to {out}", highlight=False)
    if account is not None:
        print_account(err, run, account)
    else:
        print_summary(err, run, top)
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line, ensure_ascii=False))


@app.command()
def run(
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            metavar="DATE",
            help="The date to decide at (YYYY-MM-DD): the signals see the whole days before it.",
        ),
    ],
    workspace: WorkspaceOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="F", help="Write the decision lines (.jsonl, .csv or .parquet)."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Decide and write --out, but record and send nothing."),
    ] = False,
    engine: EngineOption = "duckdb",
    rebuild: RebuildOption = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the decision lines (JSONL) on stdout.")
    ] = False,
) -> None:
    """Decide the one offer worth making to each account now, record it and deliver it
    (docs/decisions.md).

    Opportunities go through the workspace's playbooks.yaml (or the built-in playbooks) and its
    guardrails; each offer gets its message in the account's language and goes out through its
    channel (in-app queue, email over SMTP, CSM task or webhook, set up with UPSELL_* variables).
    Running the same --as-of again sends nothing twice and retries failed deliveries. A summary
    (offers by kind, channel and playbook; refusals by guardrail) goes to stderr.
    """
    from upsell.channels.base import channel_for
    from upsell.channels.settings import ChannelSettings
    from upsell.cli.opportunities import write_lines
    from upsell.cli.runs import print_run
    from upsell.engine.backends import Engine
    from upsell.pipeline import rollups_folder
    from upsell.runs import run_offers
    from upsell.sources.config import load_config
    from upsell.templates import MessageTemplates

    day = _as_of(as_of)
    with _errors():
        ws = _open(workspace)
        try:
            loaded = ws.catalog()
            if loaded is None:
                raise _fail(
                    f"{ws.folder} has no catalog yet: import one with `upsell import --catalog F`",
                    EXIT_USAGE,
                )
            playbooks = _playbooks(ws.folder, loaded.catalog)
            templates = MessageTemplates(ws.folder)
            _require_templates(templates, playbooks.templates)
            channels = None
            if not dry_run:
                settings = ChannelSettings()
                channels = {}
                for name in sorted({p.channel for p in playbooks.playbooks}):
                    channel = channel_for(name, settings)
                    problems = channel.problems()
                    if problems:
                        users = ", ".join(p.id for p in playbooks.playbooks if p.channel == name)
                        raise _fail(
                            f"channel {name} (playbooks {users}) cannot deliver: "
                            f"{'; '.join(problems)}. Set it up, or use --dry-run.",
                            EXIT_USAGE,
                        )
                    channels[name] = channel
            backend = Engine(engine)
            try:
                with err.status("Deciding offers"):
                    result = run_offers(
                        backend,
                        db=ws.engine,
                        folder=rollups_folder(ws.folder),
                        catalog=loaded.catalog,
                        policy=load_config(ws.folder).opportunities,
                        playbooks=playbooks,
                        templates=templates,
                        as_of=day,
                        channels=channels,
                        rebuild=rebuild,
                    )
            finally:
                backend.close()
        finally:
            ws.close()
        if out is not None:
            n = write_lines(out, result.lines)
            err.print(f"Wrote {n:,} decisions to {out}", highlight=False)
    print_run(err, result)
    if as_json:
        for line in result.lines:
            typer.echo(json.dumps(line, ensure_ascii=False))


def _playbooks(folder: Path, catalog: Catalog) -> Playbooks:
    from upsell.channels.base import channel_names
    from upsell.sources.playbooks import load_playbooks

    return load_playbooks(folder, catalog=catalog, channels=channel_names()).playbooks


def _require_templates(templates: MessageTemplates, names: Iterable[str]) -> None:
    from jinja2 import TemplateError

    for name in sorted(names):
        try:
            templates.environment("en").get_template(f"{name}.j2")
        except TemplateError as e:
            raise _fail(
                f"template {name}: {type(e).__name__}: {e}; see `upsell playbooks check`",
                EXIT_USAGE,
            ) from None


playbooks_app = typer.Typer(
    name="playbooks",
    help="Check and copy the playbooks, guardrails and message templates (docs/decisions.md).",
    no_args_is_help=True,
)
app.add_typer(playbooks_app)


@playbooks_app.command("check")
def playbooks_check(workspace: WorkspaceOption = None) -> None:
    """Validate playbooks.yaml and the templates it names, render every template in every
    language, and list the messages without a translation (they fall back to English).

    Exit status 2 when the playbooks or a template are invalid; missing translations are reported
    but do not fail the check.
    """
    from upsell.channels.base import channel_names
    from upsell.cli.runs import print_playbooks, print_template_report
    from upsell.sources.playbooks import load_playbooks, playbook_warnings
    from upsell.templates import MessageTemplates, sample_facts

    with _errors():
        ws = _open(workspace)
        try:
            loaded = ws.catalog()
        finally:
            ws.close()
        catalog = loaded.catalog if loaded is not None else None
        found = load_playbooks(ws.folder, catalog=catalog, channels=channel_names())
        source = "built-in defaults" if found.default else found.file
        print_playbooks(err, found.playbooks, source)
        if catalog is not None:
            text = Path(found.file).read_text(encoding="utf-8")
            for w in playbook_warnings(found.playbooks, catalog, text=text, file=found.file):
                err.print(f"[yellow]{w}[/]", highlight=False, soft_wrap=True)
        templates = MessageTemplates(ws.folder)
        report = templates.check(found.playbooks.templates, catalog, sample=sample_facts())
        print_template_report(err, report)
        if any(p.severity == "error" for p in report.problems):
            raise typer.Exit(EXIT_USAGE)
        err.print("The playbooks are valid.", highlight=False)


@playbooks_app.command("copy")
def playbooks_copy(
    workspace: WorkspaceOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files the workspace already has.")
    ] = False,
) -> None:
    """Copy the built-in playbooks.yaml, templates/ and locale/ into the workspace to edit them.

    The workspace's files then take precedence: playbooks.yaml replaces the built-in one, a
    template or translation file replaces the built-in one of the same name.
    """
    import shutil

    from upsell.templates import DEFAULTS

    with _errors():
        ws = _open(workspace)
        ws.close()
        pairs = [(DEFAULTS / "playbooks.yaml", ws.folder / "playbooks.yaml")]
        for sub in ("templates", "locale"):
            pairs += [(f, ws.folder / sub / f.name) for f in sorted((DEFAULTS / sub).iterdir())]
        existing = [str(dst) for _, dst in pairs if dst.exists()]
        if existing and not force:
            raise _fail(
                f"{len(existing)} files exist already (first: {existing[0]}); use --force to "
                "overwrite them",
                EXIT_USAGE,
            )
        for src, dst in pairs:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        err.print(
            f"Copied playbooks.yaml and {len(pairs) - 1} template and translation files into "
            f"{ws.folder}. Check them with `upsell playbooks check`.",
            highlight=False,
        )


@app.command()
def report(
    workspace: WorkspaceOption = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="DATE", help="First month (YYYY-MM-DD; default: the first data)."
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="DATE", help="Last month (default: the last data)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="F",
            help="Write the report: .html (a self-contained page with charts) or .json.",
        ),
    ] = None,
    locale: Annotated[
        str | None,
        typer.Option(
            "--locale",
            metavar="L",
            help="Locale for money and numbers (en, de, nl_BE, ...; default: config.yaml's "
            "report: locale, else en).",
        ),
    ] = None,
    engine: EngineOption = "duckdb",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout.")
    ] = False,
) -> None:
    """Report revenue and expansion (docs/metrics.md): MRR movements by month with expansion by
    cause, NDR/GRR, quick ratio, ARPA, LTV, upsell conversion, the offer funnel, incremental revenue
    against the holdout, cohorts, and the top offers of the latest run.

    The settings of config.yaml's metrics: section are used and stated in the report. The
    headline numbers go to stderr.
    """
    from upsell.cli.reports import print_report

    if out is not None and out.suffix.lower() not in (".html", ".json"):
        raise _fail(f"--out must end in .html or .json, got {out.name!r}", EXIT_USAGE)
    with _errors():
        data = _report(workspace, from_, to, locale, engine)
        if out is not None:
            _write_report(data, out)
            err.print(f"Wrote the report to {out}", highlight=False)
    print_report(err, data)
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _report(
    workspace: Path | None,
    from_: str | None,
    to: str | None,
    locale: str | None,
    engine: str,
    top: list[dict[str, object]] | None = None,
    ws: Workspace | None = None,
) -> dict[str, object]:
    from upsell.domain.messages import known_locale
    from upsell.engine.backends import Engine
    from upsell.pipeline import rollups_folder
    from upsell.reporting import build_report, data_span
    from upsell.sources.config import load_config

    if locale is not None and not known_locale(locale):
        raise _fail(f"--locale {locale!r} is not a locale such as en, de or nl_BE", EXIT_USAGE)
    first = _as_of(from_) if from_ else None
    last = _as_of(to) if to else None
    if first and last and last < first:
        raise _fail(f"--to {last} is before --from {first}", EXIT_USAGE)
    own = ws is None
    opened = ws or _open(workspace)
    try:
        loaded = opened.catalog()
        if loaded is None:
            raise _fail(
                f"{opened.folder} has no catalog yet: import one with `upsell import --catalog F`",
                EXIT_USAGE,
            )
        config = load_config(opened.folder)
        backend = Engine(engine)
        try:
            with err.status("Computing the report"), opened.engine.connect() as conn:
                span = data_span(conn=conn)
                if span is None:
                    raise _fail(f"{opened.folder} has no subscriptions to report on", EXIT_USAGE)
                return build_report(
                    backend,
                    conn=conn,
                    catalog=loaded.catalog,
                    rollups=rollups_folder(opened.folder),
                    settings=config.metrics,
                    first=first or span[0],
                    last=last or span[1],
                    locale=locale or config.locale,
                    workspace=str(opened.folder),
                    top=top or (),
                )
        finally:
            backend.close()
    finally:
        if own:
            opened.close()


def _write_report(data: dict[str, object], out: Path) -> None:
    from upsell.cli.opportunities import OutputError

    if not out.parent.is_dir():
        raise OutputError(f"{out}: the folder {out.parent} does not exist")
    if out.suffix.lower() == ".json":
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(out)
    else:
        from upsell.report import write_html

        write_html(data, out)


@app.command("import")
def import_(
    workspace: WorkspaceOption = None,
    catalog: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="catalog.yaml: plans, add-ons, products, metrics, prices.",
            show_default=False,
        ),
    ] = None,
    accounts: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Accounts file (.csv, .jsonl or .parquet).", show_default=False
        ),
    ] = None,
    subscriptions: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Subscriptions file: one row per period an item was held.",
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Usage events file, in Segment's track shape.", show_default=False
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Store nothing from a file that has any invalid row (and stop there)."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was imported as JSON on stdout.")
    ] = False,
) -> None:
    """Import the catalog and data files into the workspace, in that order.

    Invalid rows are written to FILE.rejects.jsonl with their row number and reason; the valid rows
    of that file are stored (with --strict, none are). Importing the same file again stores nothing
    new; a subscriptions or events file that grew is read on from where the last import stopped.
    Exit status 1 when any row was rejected.
    """
    if not any((catalog, accounts, subscriptions, events)):
        raise _fail(
            "nothing to import: give --catalog, --accounts, --subscriptions or --events", EXIT_USAGE
        )
    results: list[FileImport] = []
    rejected_file: ImportRejected | None = None
    skipped: list[str] = []
    summary: dict[str, object] = {}
    with _errors():
        ws = _open(workspace)
        try:
            if catalog is not None:
                done = import_catalog(engine=ws.engine, path=catalog)
                for warning in done.loaded.warnings:
                    err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
                state = "new version" if done.created else "unchanged"
                err.print(f"Catalog {catalog}: version {done.version} ({state}).", highlight=False)
                summary["catalog"] = {
                    "file": str(catalog),
                    "version": done.version,
                    "created": done.created,
                }
            loaded = ws.catalog()
            given: list[tuple[Kind, Path | None]] = [
                ("accounts", accounts),
                ("subscriptions", subscriptions),
                ("events", events),
            ]
            files = [(kind, path) for kind, path in given if path is not None]
            for position, (kind, path) in enumerate(files):
                try:
                    with _progress(path) as progress:
                        result = import_table(
                            engine=ws.engine,
                            kind=kind,
                            path=path,
                            catalog=loaded.catalog if loaded else None,
                            strict=strict,
                            progress=progress,
                        )
                except ImportRejected as exc:
                    rejected_file = exc
                    skipped = [str(p) for _, p in files[position + 1 :]]
                    break
                results.append(result)
                if strict and result.rejected:
                    skipped = [str(p) for _, p in files[position + 1 :]]
                    break
        finally:
            ws.close()
    _print_results(results)
    if skipped and rejected_file is None:
        err.print(
            f"Not imported (--strict stops at the first file with rejects): {', '.join(skipped)}"
        )
    if rejected_file is not None:
        message = f"{rejected_file}\nNothing was stored from {rejected_file.file}"
        if skipped:
            message += f"; not imported either: {', '.join(skipped)}"
        raise _fail(message + ".", EXIT_INVALID_INPUT)
    if as_json:
        summary["files"] = [r.as_dict() for r in results]
        typer.echo(json.dumps(summary, indent=2))
    if any(r.rejected for r in results):
        raise typer.Exit(EXIT_INVALID_INPUT)


@contextmanager
def _progress(path: Path, *, always: bool = False) -> Iterator[ProgressCallback | None]:
    size = path.stat().st_size if path.is_file() else 0
    if size < PROGRESS_MIN_BYTES and not always:
        yield None
        return
    columns = (
        TextColumn(f"{path.name}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("import", total=size)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _print_results(results: list[FileImport]) -> None:
    if not results:
        return
    table = Table(title="Imported", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("file", "kind", "rows", "new", "updated", "unchanged", "rejected"):
        table.add_column(
            name,
            justify="left" if name in ("file", "kind") else "right",
            no_wrap=True,
            min_width=len(name),
        )
    for r in results:
        table.add_row(
            r.file.name,
            r.kind,
            f"{r.read:,}",
            f"{r.new:,}",
            f"{r.updated:,}",
            f"{r.unchanged:,}",
            f"[red]{r.rejected:,}[/]" if r.rejected else "0",
        )
    err.print(table)
    for r in results:
        if r.resumed_after_row:
            err.print(f"{r.file}: resumed after row {r.resumed_after_row:,} (imported before).")
        if r.rejected:
            state = "nothing stored (--strict)" if not r.stored else "valid rows stored"
            err.print(
                f"[red]{r.file}: {r.rejected:,} rows rejected[/], {state}; reasons in {r.rejects_file}",
                highlight=False,
                soft_wrap=True,
            )
            for line in r.first_rejects:
                err.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; the file being imported was rolled back")
        sys.exit(130)
