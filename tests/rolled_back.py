"""One database world shared by many test cases, each case rolled back to it.

`OuterTransaction` holds one connection with a transaction that is never committed. While it
is active, every session the app opens (the test's, each request's, each eager job's: they
live in different app contexts) works on that connection and joins its transaction through a
SAVEPOINT (`join_transaction_mode="create_savepoint"`): their commits release savepoints,
their rollbacks undo only their own work. A world built once stays in the outer transaction;
each case runs inside a savepoint of its own that is rolled back afterwards, so whatever a
case did (jobs run eagerly after its commits included) is gone before the next one starts,
and nothing is ever written for real: `stop()` checks that from a second connection, then
rolls the outer transaction back.

Single-threaded only: the test client and the eager job runner take turns on the one
connection. SQLite holds its write lock (BEGIN IMMEDIATE) for the whole time; PostgreSQL
its row locks: other connections must not write meanwhile.
"""
from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from models import db


def _bound_session_get_bind(self, *args, **kwargs):
    return self.bind


class OuterTransaction:
    def __init__(self, app, keep: set[str]):
        self.app = app
        self.keep = keep  # reference tables the migrations fill: not counted as leaks
        self.connection: Connection | None = None
        self._case = None

    def start(self) -> None:
        factory = db.session.session_factory
        with self.app.app_context():
            db.session.remove()
            self.connection = db.engine.connect()
            token = db.write_intent.set(True)  # SQLite: BEGIN IMMEDIATE, held until stop()
            try:
                self._outer = self.connection.begin()
            finally:
                db.write_intent.reset(token)
        self._saved_kw = dict(factory.kw)
        factory.configure(bind=self.connection, join_transaction_mode="create_savepoint")
        # Flask-SQLAlchemy's Session.get_bind picks the app's engine and ignores `bind`.
        factory.class_.get_bind = _bound_session_get_bind

    def begin_case(self) -> None:
        self._case = self.connection.begin_nested()

    def end_case(self) -> None:
        """Undo the case (the caller removed its sessions first)."""
        case, self._case = self._case, None
        if case is not None and case.is_active:
            case.rollback()

    def stop(self) -> None:
        factory = db.session.session_factory
        with self.app.app_context():
            db.session.remove()
        del factory.class_.get_bind
        factory.kw.clear()
        factory.kw.update(self._saved_kw)
        try:
            leaked = self.committed_rows()
        finally:
            self._outer.rollback()
            self.connection.close()
            self.connection = None
        assert leaked == {}, f"rows committed past the outer transaction: {leaked}"

    def committed_rows(self) -> dict[str, int]:
        """Rows another connection sees in the tables the world fills (none, if nothing leaked)."""
        counts = {}
        token = db.write_intent.set(False)  # a plain read: SQLite's write lock is the outer's
        with self.app.app_context(), db.engine.connect() as other:
            for table in db.metadata.sorted_tables:
                if table.name in self.keep:
                    continue
                n = other.scalar(select(func.count()).select_from(table))
                if n:
                    counts[table.name] = n
            other.rollback()
        db.write_intent.reset(token)
        return counts

    def fingerprint(self) -> dict[str, list]:
        """Every row of every table, as this connection sees it: equal before and after a case."""
        rows = {}
        for table in db.metadata.sorted_tables:
            order = ", ".join(f'"{c.name}"' for c in table.primary_key.columns) or "1"
            rows[table.name] = [tuple(r) for r in self.connection.execute(
                text(f'SELECT * FROM "{table.name}" ORDER BY {order}'))]
        return rows
