"""The import graph, read with `ast` (imports inside functions count too), so no circle can hide
behind a function-local import and the layers stay as designed:

- the modules of `models/` import each other without a cycle (package `__init__` files aside:
  `models/__init__.py` imports every model for the metadata);
- models import neither services nor blueprints, and nothing imports the `app` module (the
  extensions are in `extensions.py`; only entry points and tests build the app);
- a blueprint package never imports another one's modules, its forms aside: shared view helpers
  live in blueprints/access.py and blueprints/web.py, shared rules in models.

How `from models import X` (or `from models.loyalty import X`) is counted: as an import of the
module that defines X, found through the package `__init__`'s re-exports (`from models.stories
import Story` there makes `from models import Story` an edge to models.stories). Names the
`__init__` defines itself (`db`, `DomainError`, `N_`) are no edge: they depend on nothing.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("models", "services", "blueprints", "extensions", "app", "commands")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def imports_of(tree: ast.AST, package: str) -> list[tuple[str, str | None]]:
    """(module, name) for every import anywhere in TREE: name is what `from module import name`
    takes (None for `import module`). Relative imports are resolved against PACKAGE."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [(base, alias.name) for alias in node.names]
    return found


class Packages:
    """What each package `__init__` under models/ re-exports, and which modules exist."""

    def __init__(self, root: str = "models"):
        files = source_files(root)
        self.modules = {module_name(p) for p in files if p.name != "__init__.py"}
        self.packages = {module_name(p) for p in files if p.name == "__init__.py"}
        self.exports: dict[str, dict[str, str]] = {}
        for path in files:
            if path.name == "__init__.py":
                package = module_name(path)
                tree = ast.parse(path.read_text(encoding="utf-8"))
                self.exports[package] = {
                    name: module for module, name in imports_of(tree, package) if name and name != "*"
                }

    def resolve(self, module: str, name: str | None, seen=()) -> set[str]:
        """The modules (not packages) that `from MODULE import NAME` / `import MODULE` reaches."""
        if module in self.modules:
            return {module}
        if module not in self.packages or module in seen:
            return set()
        if name is None:  # `import models.loyalty`: whatever its __init__ pulls in
            return set().union(*(self.resolve(m, n, seen + (module,)) for n, m in self.exports[module].items()))
        if f"{module}.{name}" in self.modules | self.packages:
            return self.resolve(f"{module}.{name}", None, seen + (module,))
        source = self.exports[module].get(name)
        return self.resolve(source, name, seen + (module,)) if source else set()  # None: defined in __init__


def model_graph() -> dict[str, set[str]]:
    packages = Packages()
    graph = {}
    for path in source_files("models"):
        if path.name == "__init__.py":
            continue
        me = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges = set()
        for module, name in imports_of(tree, me.rsplit(".", 1)[0]):
            if module == "models" or module.startswith("models."):
                edges |= packages.resolve(module, name)
        graph[me] = edges - {me}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of GRAPH as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_modules_of_models_import_each_other_without_a_cycle():
    graph = model_graph()
    assert len(graph) > 15  # it read the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in models/: " + " -> ".join(cycle)


def test_the_cycle_finder_sees_imports_inside_functions_and_through_reexports():
    stories = ast.parse("from models import db\nfrom models.search_index import reindex_story\n")
    search = ast.parse("def f():\n    from models import Story\n")
    packages = Packages()
    graph = {}
    for me, tree in (("models.stories", stories), ("models.search_index", search)):
        graph[me] = set().union(*(packages.resolve(m, n) for m, n in imports_of(tree, "models") if m.startswith("models")))
    assert graph == {"models.stories": {"models.search_index"}, "models.search_index": {"models.stories"}}
    assert find_cycle(graph) == ["models.search_index", "models.stories", "models.search_index"]
    assert packages.resolve("models", "db") == set()  # defined in models/__init__: no edge


def _imports(path: Path) -> list[str]:
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    return [m for m, _ in imports_of(ast.parse(path.read_text(encoding="utf-8")), package)]


@pytest.mark.parametrize("path", source_files("models", "services", "blueprints") + [ROOT / "commands.py",
                                                                                   ROOT / "extensions.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_the_app_module(path):
    assert not [m for m in _imports(path) if m == "app" or m.startswith("app.")], \
        f"{path.relative_to(ROOT)} imports app: extensions are in extensions.py, the app is built by entry points"


@pytest.mark.parametrize("path", source_files("models"), ids=lambda p: str(p.relative_to(ROOT)))
def test_models_import_neither_services_nor_blueprints(path):
    wrong = [m for m in _imports(path) if m.split(".")[0] in ("services", "blueprints", "extensions", "commands")]
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


BLUEPRINT_PACKAGES = sorted(p.name for p in (ROOT / "blueprints").iterdir() if (p / "__init__.py").exists())
SHARED_HELPERS = sorted(p for p in (ROOT / "blueprints").glob("*.py") if p.stem not in ("__init__", "registry"))


@pytest.mark.parametrize("package", BLUEPRINT_PACKAGES)
def test_a_blueprint_imports_no_other_blueprints_modules_but_its_forms(package):
    wrong = []
    for path in sorted((ROOT / "blueprints" / package).rglob("*.py")):
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "blueprints" and len(parts) > 1 and parts[1] in BLUEPRINT_PACKAGES \
                    and parts[1] != package and parts[2:] != ["forms"]:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", SHARED_HELPERS, ids=lambda p: p.name)
def test_shared_view_helpers_import_no_blueprint(path):
    wrong = [m for m in _imports(path) if m.split(".")[:2][-1] in BLUEPRINT_PACKAGES and m.startswith("blueprints.")]
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"
