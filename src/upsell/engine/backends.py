"""The back ends the engine's Ibis expressions run on: DuckDB in-process (default) and PySpark.

Everything else in the engine is written once against Ibis; the few things Ibis does not translate
the same way on both (reading a JSON property, writing and reading Parquet) are here.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from upsell.errors import UpsellError

BackendName = Literal["duckdb", "pyspark"]
BACKENDS: tuple[BackendName, ...] = ("duckdb", "pyspark")


class EngineError(UpsellError):
    """The engine cannot run: a missing back end, or a catalog it cannot evaluate."""


@ibis.udf.scalar.builtin(name="json_extract_string")  # type: ignore[untyped-decorator]
def _duckdb_json(text: str, path: str) -> str:  # type: ignore[empty-body]
    """DuckDB's json_extract_string, called by name in the SQL (this body never runs)."""


@ibis.udf.scalar.builtin(name="get_json_object")  # type: ignore[untyped-decorator]
def _spark_json(text: str, path: str) -> str:  # type: ignore[empty-body]
    """Spark's get_json_object, called by name in the SQL (this body never runs)."""


def spark_unavailable() -> str | None:
    """Why PySpark cannot run here (no Java 17+, or pyspark not installed), or None."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'upsell[spark]' or the dev extras)"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Java is not installed: PySpark needs a Java 17 runtime (apt-get install openjdk-17-jre-headless)"
    return None


#: DuckDB's optimizers that plan from the statistics of the tables' rows (`Backend.prepare`).
STATISTICS_OPTIMIZERS = (
    "statistics_propagation",
    "compressed_materialization",
    "row_group_pruner",
    "empty_result_pullup",
)


class Backend:
    """An Ibis connection plus the back-end specific pieces."""

    def __init__(self, name: str = "duckdb", *, threads: int | None = None) -> None:
        if name not in BACKENDS:
            raise EngineError(f"unknown engine back end {name!r}: expected one of {BACKENDS}")
        self.name: BackendName = name
        self._planless = False  # the statistics optimizers are off (`prepare`)
        if name == "duckdb":
            self.con: Any = (
                ibis.duckdb.connect(threads=threads) if threads else ibis.duckdb.connect()
            )
            # No progress bar: DuckDB draws it on stdout, where --json output goes.
            self.con.raw_sql("SET enable_progress_bar = false")
            self._json: Callable[..., ir.StringValue] = _duckdb_json
        else:
            self.con = ibis.pyspark.connect(_spark_session(threads))
            self._json = _spark_json

    def json_text(self, column: ir.StringValue, key: str) -> ir.StringValue:
        """The text of top-level property `key` of a JSON object column (null when absent)."""
        return self._json(column, f"$.{key}")

    def table(self, data: pa.Table, name: str) -> ir.Table:
        """An in-memory Arrow table as an Ibis table of this back end."""
        if self.name == "duckdb":
            self.con.con.register(name, data)
            return self.con.table(name)
        return self.con.create_view(name, ibis.memtable(data), overwrite=True)

    def read_parquet(self, paths: list[Path], name: str) -> ir.Table:
        files = [str(p) for p in paths]
        if self.name == "duckdb":
            return self.con.read_parquet(files, table_name=name)
        self.con._session.read.parquet(*files).createOrReplaceTempView(name)
        return self.con.table(name)

    def write_parquet(self, expr: ir.Table, path: Path) -> None:
        """Write an expression's result to one Parquet file (DuckDB streams; Spark collects)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        if self.name == "duckdb":
            self.con.to_parquet(expr, tmp, compression="zstd")
        else:
            import pyarrow.parquet as pq

            pq.write_table(self.con.to_pyarrow(expr), tmp, compression="zstd")
        tmp.replace(path)

    def arrow(self, expr: ir.Table) -> pa.Table:
        return self.con.to_pyarrow(expr)

    # -- queries run many times on small inputs (real-time triggers) ----------------------------

    def input_table(self, name: str, schema: pa.Schema) -> ir.Table:
        """An empty table `name` of `schema` that `fill` replaces the rows of: the input of
        prepared queries (`prepare`), which see its rows as they are when they run."""
        if self.name != "duckdb":
            return self.table(schema.empty_table(), name)
        self.con.con.execute(f'DROP TABLE IF EXISTS "{name}"')
        self.con.con.from_arrow(schema.empty_table()).create(name)
        return self.con.table(name)

    def fill(self, name: str, data: pa.Table) -> None:
        """Replace the rows of the input table `name` with `data` (of its schema)."""
        if self.name != "duckdb":
            self.table(data, name)
            return
        con = self.con.con
        con.execute(f'DELETE FROM "{name}"')
        if data.num_rows:
            con.from_arrow(data).insert_into(name)

    def prepare(self, expr: ir.Table) -> Prepared:
        """`expr` compiled and planned once, to run again and again on the rows its input tables
        (`input_table`) hold then: compiling and planning the signal tables takes a second or
        more, running them on a few accounts milliseconds (flows/opportunities.py, `SignalsAt`).
        A prepared query binds the views it reads (`read_parquet`'s) as they were: prepare it
        again when they change. On PySpark the expression is simply run each time.

        A plan must not depend on the rows there were when it was made: from the first prepared
        query on, this back end's DuckDB runs without the optimizers that plan from the tables'
        statistics (a plan made over empty input tables would otherwise, for one, squeeze their
        strings into the zero bytes the statistics promise). Give prepared queries a back end of
        their own (`Workspace.new_backend`)."""
        if self.name == "duckdb" and not self._planless:
            self.con.con.execute(f"SET disabled_optimizers = '{','.join(STATISTICS_OPTIMIZERS)}'")
            self._planless = True
        return Prepared(self, expr)

    def close(self) -> None:
        if self.name == "duckdb":
            self.con.disconnect()


def _spark_session(threads: int | None) -> Any:
    reason = spark_unavailable()
    if reason:
        raise EngineError(f"the pyspark back end cannot run: {reason}")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(f"local[{threads or '*'}]")
        .appName("upsell")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class Prepared:
    """A query prepared by `Backend.prepare`: call it to run it; `close` frees it."""

    _count = 0

    def __init__(self, backend: Backend, expr: ir.Table) -> None:
        self.backend = backend
        self.expr = expr
        self.name: str | None = None
        if backend.name == "duckdb":
            con = backend.con
            con._run_pre_execute_hooks(expr)  # registers the expression's in-memory tables
            Prepared._count += 1
            self.name = f"upsell_prepared_{Prepared._count}"
            con.con.execute(f"PREPARE {self.name} AS {con.compile(expr)}")

    def __call__(self) -> pa.Table:
        if self.name is None:
            return self.backend.arrow(self.expr)
        from ibis.backends.duckdb.converter import DuckDBPyArrowData

        table = self.backend.con.con.execute(f"EXECUTE {self.name}").to_arrow_table()
        result: pa.Table = self.expr.__pyarrow_result__(table, data_mapper=DuckDBPyArrowData)
        return result

    def close(self) -> None:
        if self.name is not None:
            self.backend.con.con.execute(f"DEALLOCATE {self.name}")
            self.name = None
