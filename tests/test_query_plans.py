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


def test_a_members_points_history_reads_their_postings_only(factories):
    """The history page walks the member's own postings in (user_id, id) order. Without that
    index PostgreSQL walked the whole ledger's primary key backwards, filtering for the member
    (653 ms at 1,001,200 postings). The ledger is shaped like the real one, many members with a
    few dozen postings each, and its statistics are fresh, so neither database can call the
    primary key walk cheaper because one member owns most rows of a test table."""
    from datetime import date

    from sqlalchemy import insert, text

    from models.loyalty.ledger import PointsPosting, history

    members = [factories.user() for _ in range(30)]
    db.session.commit()
    db.session.execute(insert(PointsPosting), [
        {"user_id": m.id, "kind": "earn", "points": 5, "growth": 5, "reason": "test", "key": f"plan:{m.id}:{n}",
         "day": date(2026, 12, 1)}
        for m in members for n in range(30)])
    db.session.commit()
    db.session.execute(text("ANALYZE points_ledger"))
    db.session.commit()
    with _first_statement("points_ledger") as seen:
        assert len(history(members[7])) == 20
    plan = _plan(*seen[0])
    assert "ix_points_ledger_user_id_id" in plan, plan
    db.session.rollback()
    if db.session.connection().dialect.name == "sqlite":  # later tests plan without these statistics
        db.session.execute(text("DELETE FROM sqlite_stat1 WHERE tbl = 'points_ledger'"))
        db.session.commit()
        db.session.execute(text("ANALYZE sqlite_schema"))


def test_a_threads_replies_check_reads_the_replies_index(communities, factories):
    """Whether a deleted comment still has replies to show is asked per thread: it must be an
    index lookup, also after ANALYZE has seen that almost every comment is top-level (SQLite
    counted their NULL parent_id as one value matching every row, so it scanned the table for
    each thread: 393 ms on the story page at 200,016 comments)."""
    from sqlalchemy import text

    from models.engagement import add_comment, comment_page, set_comment_status
    from models.stories import StoryInput, save_story

    writer = factories.user(login="13900002201", verified=True)
    reader = factories.user(login="13900002202", verified=True)
    story = save_story(writer, StoryInput(communities["ev"], "冬天续航实测", "提车三个月，冬天续航掉了两成。", []), publish=True)
    tops = [add_comment(story, reader, f"第 {i} 条评论") for i in range(30)]
    add_comment(story, writer, "谢谢", parent_id=tops[0].id)
    set_comment_status(tops[0], "deleted")
    db.session.commit()
    sqlite = db.session.connection().dialect.name == "sqlite"
    if sqlite:  # the statistics ANALYZE wrote for bench/scale.py's 200,016 comments
        db.session.execute(text("ANALYZE comments"))
        db.session.execute(text("DELETE FROM sqlite_stat1 WHERE tbl = 'comments'"))
        for index, stat in SCALE_COMMENT_STATS.items():
            db.session.execute(text("INSERT INTO sqlite_stat1 VALUES ('comments', :index, :stat)"),
                               {"index": index, "stat": stat})
        db.session.commit()
        db.session.execute(text("ANALYZE sqlite_schema"))  # reloads sqlite_stat1
    try:
        with _first_statement("comments") as seen:
            threads, _ = comment_page(story, reader)
        plan = _plan(*seen[0])
        assert threads and "ix_comments_replies" in plan and "SCAN comments" not in plan, plan
    finally:
        if sqlite:  # statistics outlive the rows: leave the next tests the planner they had
            db.session.rollback()
            db.session.execute(text("DELETE FROM sqlite_stat1 WHERE tbl = 'comments'"))
            db.session.commit()
            db.session.execute(text("ANALYZE sqlite_schema"))


# sqlite_stat1 of the comments at full scale: 200,016 rows, 3 a story; the top-level ones' NULL
# parent_id made a full index on it look like one value matching every row.
SCALE_COMMENT_STATS = {"ix_comments_created_at": "200016 1", "ix_comments_story_created": "200016 3 1",
                       "ix_comments_author_id": "200016 10", "uq_comments_author_id_nonce": "200016 10 10",
                       "ix_comments_parent_id": "200016 200016"}
