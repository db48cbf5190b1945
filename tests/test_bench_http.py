"""`make bench`'s HTTP measurement (bench/http_bench.py) end to end, tiny: the scale generator at a
five-hundredth, Cheyou and the floor app under gunicorn, wrk for a second on three pages and one
write, SQLite only. It checks the harness answers with real figures, not the app's speed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def wrk_installed():
    if shutil.which("wrk") is None:
        message = "the HTTP benchmark needs Debian's wrk (bin/system-deps --test)"
        if os.environ.get("CHEYOU_REQUIRE_BROWSER"):  # CI: a missing tool is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message)


def test_the_runner_measures_pages_and_a_write_beside_the_floor(wrk_installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_DATABASE_URL", "REDIS_URL")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "http_bench.py"), "--factor", "0.002", "--duration", "1",
         "--connections", "2", "--sizes", "full", "--pages", "home,story,home-next", "--writes", "like",
         "--crowd", "200", "--payers", "2", "--json", str(tmp_path / "bench.json"), "--markdown", str(tmp_path / "bench.md")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    [table] = json.loads((tmp_path / "bench.json").read_text())
    assert table["database"] == "SQLite" and table["size"] == "full"
    assert len(table["floor_rps"]) == 2 and min(table["floor_rps"]) > 0  # the floor answered, before and after
    rows = {row["key"]: row for row in table["rows"]}
    assert list(rows) == ["home", "story", "home-next", "like"]
    for row in rows.values():
        assert row["failure"] is None and row["rps"] > 0 and row["requests"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0
    assert rows["story"]["path"].startswith("/stories/") and rows["home-next"]["path"].startswith("/?")
    assert all(rows[k]["queries"] > 0 and rows[k]["bytes"] > 0 for k in ("home", "story", "home-next"))
    assert rows["like"]["rows_added"] > 0  # real likes, not error pages

    markdown = (tmp_path / "bench.md").read_text()
    assert "| page | req/s | × floor | p50 ms | p99 ms | bytes | br bytes | queries |" in markdown
    assert "| `/` |" in markdown and "load average" in markdown
