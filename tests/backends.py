"""The analytics back ends the engine's tests run on: DuckDB always, PySpark where it can run.

CI sets UPSELL_REQUIRE_SPARK so that a missing Java fails the run instead of skipping.
"""

from __future__ import annotations

import os

import pytest

from upsell.engine.backends import spark_unavailable

SPARK = pytest.param(
    "pyspark",
    marks=pytest.mark.skipif(
        spark_unavailable() is not None and not os.environ.get("UPSELL_REQUIRE_SPARK"),
        reason=f"PySpark cannot run here: {spark_unavailable()}",
    ),
)
#: Both back ends, for `pytest.mark.parametrize` and the `backend` fixture (tests/conftest.py).
BOTH = ["duckdb", SPARK]
