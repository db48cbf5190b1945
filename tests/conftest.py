"""Fixtures: one app and one migrated database per run, emptied after each test.

`make test` runs on a SQLite file; with TEST_DATABASE_URL set, on that database instead
(PostgreSQL in CI). The schema always comes from the migrations.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
from flask_login import FlaskLoginClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app import create_app
from models import db

from tests.factories import Factories


class Client(FlaskLoginClient):
    """Each request runs in its own app context, as in production: its own `g`, its own
    session. (Otherwise requests would share the test's context and Flask-Login's cached user.)"""

    def open(self, *args, **kwargs):
        # The test's own session ends its transaction first, like a separate actor would:
        # its writes become visible, and it holds no SQLite snapshot or lock meanwhile.
        db.session.commit()
        try:
            with self.application.app_context():
                return super().open(*args, **kwargs)
        finally:
            db.write_intent.set(False)
            db.session.expire_all()


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs a worker per core) each worker gets databases of its
    own: a SQLite file in its own temporary folder (below), a PostgreSQL database named after
    TEST_DATABASE_URL's plus the worker (created on first use), a Redis database counted down
    from TEST_REDIS_URL's. Processes the tests start (workers, servers) inherit them."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, …
    if not worker:
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    if os.environ.get("TEST_DATABASE_URL"):
        url = make_url(os.environ["TEST_DATABASE_URL"])
        own = url.set(database=f"{url.database}_{worker}")
        server = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with server.connect() as conn:
                if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": own.database}):
                    conn.execute(text(f'CREATE DATABASE "{own.database}"'))
        finally:
            server.dispose()
        os.environ["TEST_DATABASE_URL"] = own.render_as_string(hide_password=False)
    if os.environ.get("TEST_REDIS_URL"):
        from urllib.parse import urlsplit

        from tests.workers import own_redis_db

        redis = urlsplit(os.environ["TEST_REDIS_URL"])
        os.environ["TEST_REDIS_URL"] = redis._replace(path=f"/{own_redis_db(int(redis.path.strip('/') or 0))}").geturl()


def _database_url(tmp: Path) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    return url or f"sqlite:///{tmp / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def app():
    tmp = Path(tempfile.mkdtemp(prefix="cheyou-test-"))
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key",
            "SQLALCHEMY_DATABASE_URI": _database_url(tmp),
            "JOBS_MODE": "eager",
            "RATELIMIT_ENABLED": True,  # storage is set up; the limiter itself is off below
            "WTF_CSRF_ENABLED": False,
            "SERVER_NAME": None,
        },
        instance_path=str(tmp / "instance"),
    )
    app.test_client_class = Client
    from extensions import limiter

    limiter.enabled = False  # tests that check limits turn it on (limiter_on)
    with app.app_context():
        _reset_schema()
        from flask_migrate import upgrade

        upgrade()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _reset_schema():
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))


# Reference data the migrations seed (levels, earning rules, the garage's makes and series)
# stays; everything else goes.
REFERENCE_TABLES = {"levels", "earning_rules", "car_makes", "car_series"}


_RESTART_SEQUENCES: list[str] = []


def _restart_sequences_sql(conn) -> str:
    """One statement restarting the id sequences of every table but the reference ones."""
    if not _RESTART_SEQUENCES:
        owned = conn.execute(text(
            "SELECT s.oid::regclass::text, t.relname FROM pg_class s"
            " JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')"
            " JOIN pg_class t ON t.oid = d.refobjid"
            " WHERE s.relkind = 'S' AND s.relnamespace = 'public'::regnamespace"))
        _RESTART_SEQUENCES.extend(f"setval('{seq}', 1, false)" for seq, table in owned
                                  if table not in REFERENCE_TABLES)
    return "SELECT " + ", ".join(_RESTART_SEQUENCES or ["1"])


def _empty_tables():
    tables = [t for t in reversed(db.metadata.sorted_tables) if t.name not in REFERENCE_TABLES]
    if db.engine.dialect.name == "postgresql":
        # DELETE, not TRUNCATE: the tables hold a few rows, and TRUNCATE's new files and
        # catalog updates cost ~0.15 s a test (minutes a run). The ids restart at 1 as before.
        for attempt in range(5):
            try:
                with db.engine.begin() as conn:
                    for table in tables:
                        conn.execute(table.delete())
                    conn.execute(text(_restart_sequences_sql(conn)))
                return
            except OperationalError as error:
                # A browser test's last request may still be running on the live server when
                # the test ends: TRUNCATE and it can deadlock. One is rolled back; try again.
                if "deadlock detected" not in str(error) or attempt == 4:
                    raise
                time.sleep(0.2)
    # SQLite checks RESTRICT keys row by row (the ledger refers to itself): switch them off
    # for the clean-up, outside any transaction, on a raw autocommit connection.
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.execute("BEGIN IMMEDIATE")  # one transaction: one WAL commit, not one a table
        for table in tables:
            cursor.execute(f'DELETE FROM "{table.name}"')
        cursor.execute("COMMIT")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
    finally:
        raw.close()


@pytest.fixture(scope="class")
def outer_transaction(app):
    """For a class of tests sharing one world: see tests/rolled_back.py. Each test of the class
    runs in a savepoint rolled back after it (by `_clean_db`) instead of emptying the tables."""
    from tests.rolled_back import OuterTransaction

    outer = OuterTransaction(app, keep=REFERENCE_TABLES)
    outer.start()
    yield outer
    outer.stop()


@pytest.fixture(autouse=True)
def _clean_db(app, request):
    """Each test starts with empty tables and a fresh session (or, in a class sharing an outer
    transaction, with that class's world as it was built)."""
    outer = request.getfixturevalue("outer_transaction") if "outer_transaction" in request.fixturenames else None
    if outer is not None:
        outer.begin_case()
    ctx = app.app_context()
    ctx.push()
    db.write_intent.set(False)  # the test's own reads must not take SQLite's write lock
    from extensions import limiter

    limiter.enabled = False  # another create_app() in a test may have switched it back on
    app.extensions["sms"].sent.clear() if "sms" in app.extensions else None
    app.extensions["jobs"].failures.clear()  # the job rows themselves go with the tables
    app.extensions["fragments"].clear()  # cached cards of rows gone with the last test (a fresh process)
    yield
    db.session.remove()
    if "corrupts_ledger" not in request.keywords:
        # Whatever a test did through the app, the ledger it leaves must verify clean.
        from models.loyalty import verify_ledger

        problems = verify_ledger()[2]
        db.session.remove()
        assert problems == [], f"points verify after {request.node.name}: {problems}"
    if outer is not None:
        outer.end_case()
    else:
        _empty_tables()
    ctx.pop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def factories(app):
    return Factories(app)


@pytest.fixture
def communities(factories):
    return factories.communities()


@pytest.fixture
def login_as(app):
    """A test client signed in as USER (through Flask-Login's test client)."""

    def make(user):
        return app.test_client(user=user)

    return make


@pytest.fixture
def csrf_on(app):
    app.config["WTF_CSRF_ENABLED"] = True
    yield
    app.config["WTF_CSRF_ENABLED"] = False


@pytest.fixture
def limiter_on(app):
    from extensions import limiter

    limiter.enabled = True
    limiter.reset()
    yield limiter
    limiter.reset()
    limiter.enabled = False


@pytest.fixture
def count_queries(app):
    """Count the SQL statements run inside a `with count_queries() as counter:` block."""
    from contextlib import contextmanager

    from sqlalchemy import event

    @contextmanager
    def counting():
        counter = {"n": 0}

        def before(*_args):
            counter["n"] += 1

        event.listen(db.engine, "before_cursor_execute", before)
        try:
            yield counter
        finally:
            event.remove(db.engine, "before_cursor_execute", before)

    return counting


@pytest.fixture
def make_app(app, tmp_path):
    """Build another app on the test database with JOBS_MODE=MODE; stopped and disposed after."""
    from app import create_app
    from extensions import limiter
    from services.jobs import ThreadRunner

    made = []
    limiter_enabled = limiter.enabled

    def make(mode="thread", **config):
        other = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "x",
                "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                "JOBS_MODE": mode,
                "RATELIMIT_ENABLED": False,  # leaves the shared limiter as the test app set it
                **config,
            },
            instance_path=str(tmp_path / f"instance-{len(made)}"),
        )
        made.append(other)
        return other

    yield make
    limiter.enabled = limiter_enabled
    for other in made:
        runner = other.extensions["jobs"]
        if isinstance(runner, ThreadRunner):
            runner.stop()
            if runner._thread is not None:
                runner._thread.join(timeout=10)
                assert not runner._thread.is_alive()
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
