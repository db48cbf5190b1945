"""Lists that must not read a whole table (issue #13): each one's query can be answered from
its index, in its order. The plan is asked of the database itself — SQLite's EXPLAIN QUERY PLAN, or
PostgreSQL's EXPLAIN with sequential scans, bitmap scans and sorts priced out (a test database
is too small for the planner to prefer an index on its own, and its statistics change with the
tests run before, so this asks whether an index can hand the rows over in the list's order, not
whether it is cheaper today)."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from models import db
from models.moderation import featured_stories
from models.stories import feed


@contextmanager
def _first_statement(table: str):
    """The first SELECT from TABLE run inside the block, with its parameters."""
    seen = []

    def before(_conn, _cursor, statement, parameters, _context, _many):
        if not seen and statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def _plan(statement, parameters) -> str:
    connection = db.session.connection()
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        return "\n".join(str(row[-1]) for row in rows)
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        connection.exec_driver_sql(f"SET LOCAL {setting} = off")
    rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("table, index, run", [
    ("stories", "ix_stories_featured", lambda communities: featured_stories(communities["ev"].id)),
    ("users", "ix_memberships_community_joined", lambda communities: communities["ev"].recent_members()),
    ("stories", "ix_stories_community_hot", lambda communities: feed([communities["ev"].id], sort="hot")),
    ("stories", "ix_stories_hot", lambda communities: feed([c.id for c in communities.values()], sort="hot")),
], ids=["featured stories", "newest members", "a community's hot stories", "hot stories of all communities"])
def test_a_community_page_list_reads_its_index(communities, factories, table, index, run):
    member = factories.user()
    communities["ev"].join(member)
    db.session.commit()
    with _first_statement(table) as seen:
        run(communities)
    plan = _plan(*seen[0])
    assert index in plan, plan
