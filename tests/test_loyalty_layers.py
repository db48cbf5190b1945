"""models/loyalty is layered bottom-up: each layer imports only the layers below it, counting
imports inside functions too, so no rule can lean on one above it (and no import circle can hide)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "models" / "loyalty"

# Layer -> the loyalty layers it may import.
ALLOWED = {
    "rules": set(),
    "standing": {"rules"},
    "ledger": {"standing", "rules"},
    "rewards": {"ledger", "standing", "rules"},
    "checks": {"rewards", "ledger", "standing", "rules"},
    "summary": {"rewards", "ledger", "standing", "rules"},
}


def loyalty_imports(source: str) -> set[str]:
    """The loyalty layers (or the package itself, as "") a module imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):  # relative: `from . import ledger`, `from .ledger import x`
            base = ["models.loyalty"] + ([node.module] if node.module else [])
            modules = [".".join(base)] + [".".join(base + [alias.name]) for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            if module == "models.loyalty":
                found.add("")
            elif module.startswith("models.loyalty."):
                found.add(module.split(".")[2])
    return found


def test_every_layer_is_listed():
    assert {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"} == set(ALLOWED)


@pytest.mark.parametrize("layer", list(ALLOWED))
def test_a_layer_imports_only_layers_below_it(layer):
    imported = loyalty_imports((PACKAGE / f"{layer}.py").read_text(encoding="utf-8"))
    assert "" not in imported, f"{layer} imports the package (its __init__ imports every layer)"
    assert imported <= ALLOWED[layer], f"{layer} imports {sorted(imported - ALLOWED[layer])}, above it"


def test_the_checker_sees_imports_inside_functions():
    source = "def f():\n    from models.loyalty.rewards import Voucher\n    import models.loyalty.checks\n"
    assert loyalty_imports(source) == {"rewards", "checks"}
