"""The layer rule of architecture.md: the domain does no I/O and never reaches up the flow."""

from __future__ import annotations

import ast
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

# Who may import whom, in the flow's direction (a module may import the layers listed for it).
LAYERS = {
    "domain": set(),
    "store": {"domain"},
    "sources": {"domain", "store"},
    "simulator": {"domain", "sources"},
    "engine": {"domain"},
    "pipeline": {"domain", "store", "engine"},
    "templates": {"domain"},
    "channels": set(),
    "runs": {"domain", "store", "engine", "pipeline", "templates", "channels"},
    "reporting": {"domain", "store", "engine", "pipeline"},
    "replay": {
        "domain",
        "store",
        "sources",
        "simulator",
        "engine",
        "pipeline",
        "templates",
        "channels",
        "runs",
        "workspace",
    },
    "report": {"domain"},
    "cli": {
        "domain",
        "store",
        "sources",
        "simulator",
        "engine",
        "pipeline",
        "templates",
        "channels",
        "runs",
        "report",
        "reporting",
        "replay",
        "workspace",
        "settings",
    },
}
SHARED = {
    "errors",
    "__init__",
    "__version__",
}  # upsell.errors and upsell.__version__ serve every layer


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


def test_the_layer_rule_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlalchemy\nfrom upsell.store import db\n")
    assert {"sqlalchemy", "upsell.store"} <= imports(bad)
