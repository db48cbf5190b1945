"""Every module imports on its own, in any order, without the app: no circle is dodged by the
order imports happen to run in, and nothing needs `create_app` (or the `app` module) to load.

Each case runs in a fresh interpreter state: one subprocess loads the third-party libraries,
then forks a child per case, which imports the case's modules and reports what went wrong
(forking keeps the few hundred cases to a few seconds)."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import importlib, json, os, sys, traceback
    project = ("models", "services", "blueprints", "extensions", "app", "commands", "tests")
    cases = json.loads(sys.argv[1])

    # Load, once, every third-party module the cases use (found by a child that imports them all).
    read, write = os.pipe()
    if os.fork() == 0:
        for case in cases:
            for name in case:
                try:
                    importlib.import_module(name)
                except BaseException:
                    pass
        libraries = [m for m in sys.modules if m.split(".")[0] not in project]
        os.write(write, json.dumps(libraries).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        libraries = json.loads(pipe.read().decode() or "[]")
    os.wait()
    for lib in libraries:
        try:
            importlib.import_module(lib)
        except BaseException:
            pass
    assert not [m for m in sys.modules if m.split(".")[0] in project]

    def start(case):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            problem = ""
            try:
                for name in case:
                    importlib.import_module(name)
                if "app" in sys.modules:
                    problem = "imported the app module"
            except BaseException:
                problem = traceback.format_exc(limit=-3)
            os.write(write, problem.encode()[:60000])
            os._exit(0)
        os.close(write)
        return pid, read

    failures, running, waiting = [], {}, list(cases)
    while waiting or running:
        while waiting and len(running) < 2:  # two at a time
            case = waiting.pop(0)
            pid, read = start(case)
            running[pid] = (case, read)
        pid, _status = os.wait()
        case, read = running.pop(pid)
        with os.fdopen(read, "rb") as pipe:
            problem = pipe.read().decode()
        if problem:
            failures.append([case, problem])
    print(json.dumps(failures))
""")


def dotted(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def run_cases(cases: list[list[str]], tmp_path: Path) -> list:
    # Bytecode cached outside the tree (PYTHONDONTWRITEBYTECODE may be set): each child then
    # loads the project's modules instead of compiling them again.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


GROUPS = [["models"], ["services"], ["blueprints"]]
ORDERS = [sum(order, []) for order in itertools.permutations(GROUPS)]
ORDERS += [sum(order, []) for order in itertools.permutations([["models"], ["services.jobs"], ["blueprints.registry"]])]
ORDERS += [["services.jobs"], ["services.tasks"], ["blueprints.registry"]]
# A module of models/ always runs models/__init__ first, which imports every model: one case
# covers them. The services and blueprint modules each start their own chain.
MODELS = [dotted(p) for p in sorted((ROOT / "models").rglob("*.py"))]
ALONE = [dotted(p) for folder in ("services", "blueprints") for p in sorted((ROOT / folder).rglob("*.py"))]
ALONE += ["extensions", "commands"]


@pytest.fixture(scope="module")
def failures(tmp_path_factory) -> dict[tuple, str]:
    """Every case below, run once: case -> what went wrong."""
    cases = ORDERS + [MODELS] + [[m] for m in ALONE] + [["app"]]
    return {tuple(case): problem for case, problem in run_cases(cases, tmp_path_factory.mktemp("imports"))}


def _report(failed: dict) -> str:
    return "\n\n".join(f"import {', '.join(case)}:\n{problem}" for case, problem in failed.items())


def test_models_services_and_blueprints_import_in_any_order_without_the_app(failures):
    failed = {case: problem for case, problem in failures.items() if list(case) in ORDERS}
    assert not failed, _report(failed)


def test_every_module_imports_alone_without_the_app(failures):
    assert len(MODELS) > 20 and len(ALONE) > 40
    failed = {case: problem for case, problem in failures.items() if list(case) == MODELS or case[0] in ALONE}
    assert not failed, _report(failed)


def test_the_check_catches_a_module_that_needs_the_app(failures):
    assert failures[("app",)] == "imported the app module"
