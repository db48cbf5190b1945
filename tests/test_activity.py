"""Member activity: one write per member per Shanghai day, none for visitors, reads stay reads,
a busy database never fails the page; the backfill rebuilds past days; inactive and DAU/MAU."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select

from models import Comment, Story, StoryLike, User, db
from models.activity import (
    MemberDay, active_days_of, daily_active, dau, inactive_since, mau, record_day, today, wau,
)
from models.events import SignupInput, signup
from models.loyalty import award, check_in
from models.types import SHANGHAI
from tests.factories import PASSWORD
from tests.test_busy_database import WriteLockHeld, impatient_app  # noqa: F401  (a fixture)

PAGES = ["/", "/communities", "/events", "/me", "/me/points", "/me/notifications", "/rewards", "/me/tickets",
         "/c/ev", "/stories/search"]


def shanghai(*args) -> datetime:
    """A moment given in Shanghai wall-clock time."""
    return datetime(*args, tzinfo=SHANGHAI).astimezone(timezone.utc)


@pytest.fixture
def statements(app):
    """Every SQL statement the app runs inside the block, in order."""
    seen: list[str] = []

    def before(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    yield seen
    event.remove(db.engine, "before_cursor_execute", before)


def day_writes(seen: list[str]) -> list[str]:
    return [s for s in seen if s.startswith("INSERT INTO member_days")
            or (s.startswith("UPDATE users SET last_active_on"))]


def days_of(member) -> list[date]:
    db.session.rollback()
    return active_days_of(member)


def last_active(member) -> date | None:
    db.session.rollback()
    return db.session.scalar(select(User.last_active_on).where(User.id == member.id))


# -- the write: once a day ----------------------------------------------------------------------

def test_twenty_pages_on_one_day_make_one_write(login_as, factories, communities, statements):
    member = factories.user(active_today=False)
    client = login_as(member)
    statements.clear()
    for n in range(20):
        assert client.get(PAGES[n % len(PAGES)]).status_code == 200
    assert len([s for s in statements if s.startswith("INSERT INTO member_days")]) == 1
    assert len([s for s in statements if s.startswith("UPDATE users SET last_active_on")]) == 1
    assert days_of(member) == [today()] and last_active(member) == today()


def test_the_next_shanghai_day_makes_one_more_write(login_as, factories, communities, statements, monkeypatch):
    member = factories.user(active_today=False)
    client = login_as(member)
    monkeypatch.setattr("models.activity.utcnow", lambda: shanghai(2026, 6, 1, 23, 50))
    for path in PAGES[:5]:
        client.get(path)
    monkeypatch.setattr("models.activity.utcnow", lambda: shanghai(2026, 6, 2, 0, 10))  # UTC: still June 1st
    for path in PAGES[:5]:
        client.get(path)
    assert len(day_writes(statements)) == 4  # an insert and an update on each day
    assert days_of(member) == [date(2026, 6, 1), date(2026, 6, 2)]
    assert last_active(member) == date(2026, 6, 2)


def test_visitors_write_nothing(client, communities, statements):
    for path in ["/", "/communities", "/events", "/rewards", "/c/ev", "/auth/login"]:
        assert client.get(path).status_code == 200
    assert day_writes(statements) == []
    assert db.session.scalar(select(func.count()).select_from(MemberDay)) == 0


def test_a_member_already_active_today_on_another_device_costs_no_write(login_as, factories, communities,
                                                                         statements):
    member = factories.user()  # the factory's member came today, like after a real signup
    phone, laptop = login_as(member), login_as(member)
    phone.get("/")
    statements.clear()
    laptop.get("/")
    laptop.get("/me")
    assert day_writes(statements) == []
    assert days_of(member) == [today()]


def test_another_account_signing_in_on_the_same_browser_counts_too(client, factories, communities):
    first = factories.user(login="13900000001", active_today=False)
    second = factories.user(login="13900000002", active_today=False)
    assert client.post("/auth/login", data={"login": "13900000001", "password": PASSWORD}).status_code == 302
    client.get("/")
    client.post("/auth/logout")
    assert client.post("/auth/login", data={"login": "13900000002", "password": PASSWORD}).status_code == 302
    client.get("/")
    assert days_of(first) == [today()] and days_of(second) == [today()]


def test_a_refused_page_records_nothing(login_as, factories, communities):
    member = factories.user(active_today=False)
    assert login_as(member).get("/admin").status_code == 403
    assert days_of(member) == []


# -- SQLite: a read stays a read, a busy database never fails the page ---------------------------

@pytest.fixture
def sqlite_transactions(app):
    """On SQLite: how each transaction began (BEGIN or BEGIN IMMEDIATE), and every write with
    the kind of transaction it ran in."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's read and write transactions")
    seen = {"immediate": 0, "writes": []}
    began: dict[int, str] = {}

    def before(conn, _cursor, statement, *_args):
        key = id(conn.connection.dbapi_connection)
        if statement.startswith("BEGIN"):
            began[key] = statement
            seen["immediate"] += statement == "BEGIN IMMEDIATE"
        elif statement.split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            seen["writes"].append((began.get(key), statement.split("(")[0].strip()))

    def ended(conn):
        began.pop(id(conn.connection.dbapi_connection), None)

    listeners = [("before_cursor_execute", before), ("commit", ended), ("rollback", ended)]
    for name, listener in listeners:
        event.listen(db.engine, name, listener)
    yield seen
    for name, listener in listeners:
        event.remove(db.engine, name, listener)


def test_sqlite_read_only_requests_stay_read_only(login_as, factories, communities, sqlite_transactions):
    member = factories.user(active_today=False)
    client = login_as(member)
    sqlite_transactions.update(immediate=0, writes=[])  # the factory's own writes
    client.get("/")  # the day's first page: its one write, in a write transaction of its own
    assert sqlite_transactions["immediate"] == 1
    assert [kind for kind, _ in sqlite_transactions["writes"]] == ["BEGIN IMMEDIATE", "BEGIN IMMEDIATE"]
    sqlite_transactions.update(immediate=0, writes=[])
    for path in PAGES:
        assert client.get(path).status_code == 200
    # The first page that shows the member's points stores their standing, once, after the
    # view and in a write transaction of its own (blueprints/points_cache.py): never a read
    # turned into a write.
    assert set(sqlite_transactions["writes"]) <= {("BEGIN IMMEDIATE", "INSERT INTO member_points")}
    assert sqlite_transactions["immediate"] == len(sqlite_transactions["writes"]) <= 1
    sqlite_transactions.update(immediate=0, writes=[])
    for path in PAGES:
        assert client.get(path).status_code == 200
    assert sqlite_transactions == {"immediate": 0, "writes": []}, "every later page only reads"


def test_a_busy_database_does_not_fail_the_page_and_the_next_one_records_the_day(impatient_app,  # noqa: F811
                                                                                 factories, communities):
    member = factories.user(login="13900007777", active_today=False)
    client = impatient_app.test_client(user=member)
    with WriteLockHeld(impatient_app), impatient_app.app_context():
        page = client.get("/me")
    assert page.status_code == 200 and member.nickname in page.get_data(as_text=True)
    assert days_of(member) == []
    with impatient_app.app_context():
        assert client.get("/me").status_code == 200
    assert days_of(member) == [today()]


# -- the backfill ---------------------------------------------------------------------------------

def test_backfill_gives_each_member_their_active_days(app, runner, factories, communities):
    ev = communities["ev"]
    alice = factories.user(login="13900000011", active_today=False, created_at=shanghai(2026, 3, 1, 10, 0))
    bob = factories.user(login="13900000012", active_today=False, created_at=shanghai(2026, 2, 1, 9, 0))
    carol = factories.user(login="13900000013", created_at=shanghai(2026, 1, 5, 9, 0))  # active today too
    story = Story(community_id=ev.id, author_id=alice.id, title="提车一个月", body="很满意。", body_html="<p>很满意。</p>",
                  status="published", created_at=shanghai(2026, 3, 6, 1, 30),  # UTC: March 5th
                  published_at=shanghai(2026, 3, 6, 1, 30))
    db.session.add(story)
    db.session.flush()
    db.session.add_all([
        Comment(story_id=story.id, author_id=alice.id, body="补充一下。", created_at=shanghai(2026, 3, 10, 11, 0)),
        StoryLike(story_id=story.id, user_id=alice.id, created_at=shanghai(2026, 3, 12, 8, 0)),
    ])
    check_in(alice, now=shanghai(2026, 3, 16, 4, 0))
    # What others did to her account is not her activity: a like received, points from an admin.
    award(alice, "like_received", cause=("test", "like"), key="like:x", now=shanghai(2026, 3, 25, 12, 0))
    db.session.commit()
    event_ = factories.event(community=ev)
    registration = signup(db.session.merge(event_), db.session.merge(alice), SignupInput())
    registration.created_at = shanghai(2026, 3, 20, 9, 0)
    registration.checked_in_at = shanghai(2026, 3, 22, 15, 0)
    db.session.commit()

    result = runner.invoke(args=["activity", "backfill"])
    assert result.exit_code == 0, result.output
    assert days_of(alice) == [date(2026, 3, d) for d in (1, 6, 10, 12, 16, 20, 22)]
    assert days_of(bob) == [date(2026, 2, 1)]
    assert days_of(carol) == [date(2026, 1, 5), today()]
    assert (last_active(alice), last_active(bob), last_active(carol)) == (date(2026, 3, 22), date(2026, 2, 1), today())

    total = db.session.scalar(select(func.count()).select_from(MemberDay))
    again = runner.invoke(args=["activity", "backfill"])
    assert again.exit_code == 0 and again.output.startswith("0 active days added, last active day moved for 0")
    assert db.session.scalar(select(func.count()).select_from(MemberDay)) == total


# -- inactive for N days; DAU, WAU, MAU -----------------------------------------------------------

def test_inactive_since_counts_whole_days_from_the_last_active_one(factories):
    on = date(2026, 6, 30)
    came = {}
    for name, last in {"yesterday": 29, "a_month_ago": 0, "thirty_one": -1}.items():
        member = factories.user(active_today=False, created_at=shanghai(2026, 1, 1, 9, 0))
        record_day(member.id, date(2026, 5, 31) + timedelta(days=last))
        came[name] = member.id
    never_seen_old = factories.user(active_today=False, created_at=shanghai(2026, 5, 31, 23, 0)).id
    never_seen_new = factories.user(active_today=False, created_at=shanghai(2026, 6, 1, 0, 30)).id
    db.session.commit()

    def inactive(days):
        return set(db.session.scalars(select(User.id).where(inactive_since(days, on=on))))

    # June 30th: last active on June 29th, May 31st (30 days before), May 30th (31 days).
    assert inactive(30) == {came["a_month_ago"], came["thirty_one"], never_seen_old}
    assert inactive(31) == {came["thirty_one"]}
    assert inactive(1) == {came["yesterday"], came["a_month_ago"], came["thirty_one"], never_seen_old, never_seen_new}
    with pytest.raises(ValueError):
        inactive_since(-1)


def test_daily_weekly_and_monthly_active_members(factories):
    on = date(2026, 6, 30)
    members = [factories.user(active_today=False) for _ in range(4)]
    for member, days_ago in zip(members, ([0, 1], [3], [10, 20], [40])):
        for n in days_ago:
            record_day(member.id, on - timedelta(days=n))
    db.session.commit()
    assert (dau(on), wau(on), mau(on)) == (1, 2, 3)
    series = daily_active(on - timedelta(days=3), on)
    assert series == {on - timedelta(days=3): 1, on - timedelta(days=2): 0, on - timedelta(days=1): 1, on: 1}
