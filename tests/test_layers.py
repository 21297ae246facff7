"""The layer rule of architecture.md: the domain does no I/O and never reaches up the flow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "upsell"

# What the domain may import: the standard library minus its I/O modules, numpy/scipy for statistics,
# Babel for locale data (currency precision, number formats), and itself.
DOMAIN_THIRD_PARTY = {"numpy", "scipy", "babel"}
IO_STDLIB = {
    "asyncio", "ftplib", "glob", "http", "io", "mmap", "multiprocessing", "os", "pathlib", "pickle",
    "select", "selectors", "shelve", "shutil", "smtplib", "socket", "socketserver", "sqlite3", "ssl",
    "subprocess", "tempfile", "threading", "urllib", "wsgiref", "xmlrpc", "zipfile", "tarfile",
}  # fmt: skip

# Who may import whom, in the flow's direction (architecture.md, "Layers"): a layer may import the
# layers listed for it. A layer is a package (a folder) or a single module (``workspace.py``).
BELOW_FLOWS = {
    "domain", "columns", "store", "config", "ingest", "engine", "channels", "templates", "settings",
}  # fmt: skip
LAYERS = {
    "domain": set(),
    "columns": set(),
    "settings": set(),
    "store": {"domain", "columns"},
    "config": {"domain"},
    "ingest": {"domain", "columns", "store", "config"},
    "engine": {"domain", "columns"},
    "channels": {"domain", "settings"},
    "templates": {"domain"},
    "learning": {"domain"},
    "workspace": BELOW_FLOWS - {"ingest"},
    "flows": BELOW_FLOWS | {"workspace", "learning"},
    "report": {"domain"},
    "simulator": BELOW_FLOWS | {"workspace", "flows"},
    "service": BELOW_FLOWS | {"workspace", "flows"},
    "cli": BELOW_FLOWS | {"workspace", "flows", "report", "simulator", "service"},
}
SHARED = {
    "errors",
    "__init__",
    "__version__",
}  # upsell.errors and upsell.__version__ serve every layer
#: The only modules outside the simulator that may import it: the commands that simulate.
SIMULATING_COMMANDS = {"cli/init.py", "cli/simulate.py", "cli/demo.py"}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            if node.module == "upsell":
                names.update(f"upsell.{alias.name}" for alias in node.names)
    return names


def modules(layer: str) -> list[Path]:
    """A layer is a package (a folder) or a single module (``pipeline.py``)."""
    single = SRC / f"{layer}.py"
    return [single] if single.exists() else sorted((SRC / layer).rglob("*.py"))


@pytest.mark.parametrize("path", modules("domain"), ids=lambda p: p.name)
def test_domain_imports_only_the_standard_library_numpy_scipy_and_babel(path: Path) -> None:
    for name in imports(path):
        top = name.split(".")[0]
        if top == "upsell":
            part = name.split(".")[1] if "." in name else "__init__"
            assert part in {"domain", *SHARED}, f"{path.name} imports {name}"
        elif top in sys.stdlib_module_names:
            assert top not in IO_STDLIB, f"{path.name} does I/O through {name}"
        else:
            assert top in DOMAIN_THIRD_PARTY, f"{path.name} imports the library {name}"


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_only_the_layers_below_them(layer: str) -> None:
    allowed = LAYERS[layer] | SHARED | {layer}
    for path in modules(layer):
        for name in imports(path):
            parts = name.split(".")
            if parts[0] == "upsell" and len(parts) > 1:
                assert parts[1] in allowed, f"{path.relative_to(SRC)} imports {name}"


def test_every_module_is_in_a_layer() -> None:
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).parts
        layer = parts[0] if len(parts) > 1 else path.stem
        assert layer in LAYERS or layer in SHARED, f"{path.relative_to(SRC)} is in no layer"


def test_only_the_commands_that_simulate_import_the_simulator() -> None:
    for path in SRC.rglob("*.py"):
        where = path.relative_to(SRC).as_posix()
        if where.startswith("simulator/") or where in SIMULATING_COMMANDS:
            continue
        names = imports(path)
        assert not any(n.startswith("upsell.simulator") for n in names), where


def test_the_command_line_loads_without_the_simulator() -> None:
    code = (
        "import sys, upsell.cli.app; "
        "print(sorted(m for m in sys.modules if m.startswith('upsell.simulator')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_layer_rule_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlalchemy\nfrom upsell.store import db\n")
    assert {"sqlalchemy", "upsell.store"} <= imports(bad)


#: A module past this many lines holds several nouns and wants splitting by them (conventions.md).
MAX_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these by noun: {long}"
