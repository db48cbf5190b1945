"""What the campaign benchmarks share: an app on a fresh, migrated database, and a median.

SQLite by default (a new file in a temporary directory). With a PostgreSQL URL, the database is
emptied first (DROP SCHEMA public CASCADE), so it must be one made for benchmarks: its name
has to contain "bench" (e.g. `createdb -h 127.0.0.1 -U postgres cheyou_benchdemo`).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_app(database: str | None, prefix: str, **config):
    """A Cheyou app on DATABASE (a URL; None: a fresh SQLite file), migrated and empty."""
    from flask_migrate import upgrade
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from app import _normalise_db_url, create_app
    from models import db

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    url = _normalise_db_url(database) if database else f"sqlite:///{tmp / 'bench.sqlite3'}"
    if url.startswith("postgresql") and "bench" not in (make_url(url).database or ""):
        raise SystemExit(f"refusing to empty {make_url(url).database!r}: use a database made for benchmarks "
                         "(its name containing 'bench', e.g. cheyou_benchdemo)")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "RATELIMIT_ENABLED": False, "SECRET_KEY": "bench",
                      "WTF_CSRF_ENABLED": False, **config}, instance_path=str(tmp / "instance"))
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade()
    return app


def describe(app) -> str:
    from models import db

    with app.app_context():
        engine = db.engine
        return f"{engine.dialect.name} {'.'.join(map(str, engine.dialect.server_version_info or ()))}".strip()


def median_ms(work, rounds: int) -> float:
    """Median wall time of WORK() over ROUNDS calls, in milliseconds (after one warm-up call)."""
    work()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
