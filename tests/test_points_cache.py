"""The cached standing (member_points): what pages read instead of replaying the ledger.

Equal to the replay after every kind of posting, right until `valid_until` and recomputed past
it, stale as soon as a level threshold changes, checked by `points verify`, rebuilt by `points
recache`, constant in queries whatever the ledger's length, and right after concurrent postings
(and a page storing what it derived meanwhile) on SQLite and PostgreSQL.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, func, insert, select, update

from models import Level, PointsPosting, db
from models.loyalty import (
    GROWTH_WINDOW, MemberPoints, Standing, adjust, award, balance_of, expire_due, expiring_soon, level_of, lots_of,
    points_summary, recache_standings, refresh_standing, refund, reverse_earnings, spend, spendable_balance,
)
from models.loyalty.checks import verify_standings
from models.loyalty.ledger import expiry_for
from models.loyalty.standing import expiring_by_day, ladder_key
from models.nonces import new_nonce
from models.stories import StoryInput, save_story
from models.types import shanghai_day, utcnow
from tests.live import LiveServer, fire_at_once, session_cookie_for
from tests.test_points import T0


def truth(member, now) -> dict:
    """The member's figures at NOW the old way: straight from the ledger, no cache involved."""
    lots, _ = lots_of(member)
    held = [lot for lot in lots if lot.remaining > 0]
    mine = PointsPosting.user_id == member.id
    balance = db.session.scalar(select(func.coalesce(func.sum(PointsPosting.points), 0)).where(mine))
    growth = db.session.scalar(select(func.coalesce(func.sum(PointsPosting.growth), 0)).where(
        mine, PointsPosting.created_at > now - GROWTH_WINDOW))
    return {
        "balance": balance,
        "spendable": balance - sum(lot.remaining for lot in held if lot.expires_at <= now),
        "growth": growth,
        "level": Level.reached_with(growth)[0].number,
        "expiring": expiring_by_day([(lot.expires_at, lot.remaining) for lot in held], now, timedelta(days=90)),
    }


def row_of(member):
    return db.session.execute(select(MemberPoints.__table__).where(MemberPoints.user_id == member.id)).first()


def cached(member, now) -> dict:
    """The member's figures at NOW as the cached row has them (which must hold at NOW)."""
    standing = Standing.from_row(row_of(member))
    assert standing.is_fresh(now, ladder_key(Level.ladder())), (standing.as_of, standing.valid_until, now)
    return {"balance": standing.balance, "spendable": standing.spendable, "growth": standing.growth,
            "level": standing.level_number, "expiring": standing.expiring_within(now)}


@pytest.fixture
def statements(app):
    """The SQL statements run inside `with statements() as seen:` (first lines)."""
    from contextlib import contextmanager

    @contextmanager
    def recording():
        seen: list[str] = []

        def before(_conn, _cursor, statement, *_args):
            seen.append(" ".join(statement.split()))

        event.listen(db.engine, "before_cursor_execute", before)
        try:
            yield seen
        finally:
            event.remove(db.engine, "before_cursor_execute", before)

    return recording


def test_the_cache_equals_the_replay_after_every_kind_of_posting(factories):
    member, admin = factories.user(), factories.user(role="admin")
    steps = [
        (T0, lambda at: award(member, "story_featured", cause=("test", "a"), now=at)),
        (T0 + timedelta(days=1), lambda at: award(member, "referral", cause=("test", "b"), now=at)),
        (T0 + timedelta(days=2), lambda at: spend(member, 50, cause=("test", "s"), now=at)),
        (T0 + timedelta(days=3), lambda at: refund(member, 20, cause=("test", "r"), now=at)),
        (T0 + timedelta(days=4), lambda at: adjust(member, 30, "补发", admin, key="adj+", now=at)),
        (T0 + timedelta(days=5), lambda at: adjust(member, -10, "更正", admin, key="adj-", now=at)),
        (T0 + timedelta(days=6), lambda at: reverse_earnings(member, ("test", "b"), "违规", key="rev", now=at)),
        (T0 + timedelta(days=300), lambda at: award(member, "checkin", key="checkin:late", now=at)),
        # Past the first lots' date: expiry postings write off what is left of them.
        (T0 + timedelta(days=400), lambda at: expire_due(member, at)),
        (T0 + timedelta(days=401), lambda at: spend(member, 1, cause=("test", "late"), now=at)),
    ]
    for at, post in steps:
        post(at)
        db.session.commit()
        assert cached(member, at) == truth(member, at), at
        later = at + timedelta(days=20)  # another moment the row still covers gives the replay's answer too
        if Standing.from_row(row_of(member)).is_fresh(later, ladder_key(Level.ladder())):
            assert cached(member, later) == truth(member, later)
    kinds = {k for (k,) in db.session.execute(select(PointsPosting.kind).where(PointsPosting.user_id == member.id))}
    assert kinds == {"earn", "spend", "refund", "adjust", "expire"}
    assert verify_standings({member.id: list(db.session.scalars(
        select(PointsPosting).where(PointsPosting.user_id == member.id)
        .order_by(PointsPosting.created_at, PointsPosting.id)))}) == []


def test_the_readers_answer_from_the_cache_and_the_replay_alike(factories, statements):
    member = factories.user()
    for day in range(0, 120, 10):  # lots expiring on many different days
        award(member, "story_featured", cause=("test", str(day)), now=T0 + timedelta(days=day))
    spend(member, 250, cause=("test", "s"), now=T0 + timedelta(days=121))
    db.session.commit()
    now = T0 + timedelta(days=300)  # before the first lot expires: the row still holds
    with statements() as seen:
        figures = (balance_of(member), spendable_balance(member, now), level_of(member, now).number,
                   expiring_soon(member, now))
    # Each reads the member's row, the ladder once for all (the member reloads after the commit): no replay.
    assert not [s for s in seen if "points_ledger" in s]
    assert len([s for s in seen if "FROM member_points" in s]) == 4
    assert len([s for s in seen if "FROM levels" in s]) == 1
    expected = truth(member, now)
    assert figures == (expected["balance"], expected["spendable"], expected["level"], expected["expiring"])
    assert expiring_soon(member, now) and expiring_soon(member, now, within=timedelta(days=200)) == expiring_by_day(
        [(lot.expires_at, lot.remaining) for lot in lots_of(member)[0] if lot.remaining > 0], now,
        timedelta(days=200))


def test_a_level_that_ages_out_at_valid_until_reads_lower_from_then_on(factories, count_queries):
    member = factories.user()
    for i in range(4):  # 4 × 30 growth: Lv.2 (100)
        award(member, "referral", cause=("test", str(i)), now=T0)
    db.session.commit()
    row = row_of(member)
    assert row.level_number == 2 and row.growth == 120
    # The growth leaves the window a year on, before the points expire (the next Shanghai midnight).
    assert row.valid_until == T0 + GROWTH_WINDOW < expiry_for(T0)
    just_before = row.valid_until - timedelta(seconds=1)
    with count_queries() as counter:
        assert level_of(member, just_before).number == 2
    assert counter["n"] == 2  # from the cache
    assert level_of(member, row.valid_until).number == 1
    assert points_summary(member, row.valid_until)["level"].number == 1
    assert balance_of(member) == 400  # the points themselves are still there
    # The level job stores the lower level (and would tell the member).
    refresh_standing(member, row.valid_until)
    db.session.commit()
    assert (row_of(member).level_number, row_of(member).growth, row_of(member).version) == (1, 0, row.version + 1)


def test_a_page_read_past_valid_until_stores_the_fresh_standing_after_the_view(app, login_as, factories, statements):
    member = factories.user()
    award(member, "referral", key="old", now=utcnow() - timedelta(days=400))
    db.session.commit()
    stale = row_of(member)
    assert stale.valid_until < utcnow()  # the lot has expired and its growth aged out since
    client = login_as(member)
    with statements() as seen:
        page = client.get("/me/points")
    assert page.status_code == 200 and ">100<" in page.get_data(as_text=True)
    fresh = row_of(member)
    assert fresh.version == stale.version + 1 and fresh.as_of > stale.as_of
    assert (fresh.balance, fresh.spendable, fresh.growth, fresh.level_number) == (100, 0, 0, 1)
    written = [i for i, s in enumerate(seen) if s.startswith(("INSERT INTO member_points", "UPDATE member_points"))]
    assert len(written) == 1
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # The page read in a plain transaction; the row was written in a short one of its own.
        assert seen[0] == "BEGIN" and seen[written[0] - 1] == "BEGIN IMMEDIATE"
        assert "BEGIN IMMEDIATE" not in seen[:written[0] - 1]
    with statements() as again:
        assert client.get("/me/points").status_code == 200
    assert not [s for s in again if "member_points" in s and not s.startswith("SELECT")]
    assert not [s for s in again if "FROM points_ledger" in s and "LIMIT" not in s]  # only the history page


@pytest.fixture
def level_two_threshold():
    """Lets a test move Lv.2's threshold; the reference row is put back afterwards."""
    level = db.session.get(Level, 2)
    saved = level.growth_threshold
    yield level
    db.session.rollback()
    db.session.get(Level, 2).growth_threshold = saved
    db.session.commit()


def test_a_new_level_threshold_relevels_members_on_their_next_read(login_as, factories, level_two_threshold):
    member = factories.user()
    for i in range(4):  # 120 growth
        award(member, "referral", cause=("test", str(i)))
    db.session.commit()
    assert level_of(member).number == 2 and row_of(member).level_number == 2
    level_two_threshold.growth_threshold = 150
    db.session.commit()  # nothing else: the rows name the thresholds they were levelled against
    assert level_of(member).number == 1
    assert level_of(member).to_next == 30
    assert login_as(member).get("/me/points").status_code == 200
    row = row_of(member)
    assert row.level_number == 1 and row.ladder == ladder_key(Level.ladder())
    level_two_threshold.growth_threshold = 100
    db.session.commit()
    assert level_of(member).number == 2


def test_points_verify_reports_a_tampered_standing_and_recache_repairs_it(runner, factories):
    member = factories.user()
    award(member, "referral", key="r")
    db.session.commit()
    assert runner.invoke(args=["points", "verify"]).exit_code == 0
    db.session.execute(update(MemberPoints).where(MemberPoints.user_id == member.id)
                       .values(balance=MemberPoints.balance + 7, level_number=3))
    db.session.commit()
    result = runner.invoke(args=["points", "verify"])
    assert result.exit_code == 1
    assert f"member {member.id}: cached balance 107, ledger 100" in result.output
    assert f"member {member.id}: cached level_number 3, ledger 1" in result.output
    repaired = runner.invoke(args=["points", "recache"])
    assert repaired.exit_code == 0 and "1 standings rebuilt" in repaired.output
    assert runner.invoke(args=["points", "verify"]).exit_code == 0
    assert balance_of(member) == 100


def _bulk_postings(member, count: int) -> None:
    """COUNT earnings over the last 360 days, inserted around the ORM as bench/scale.py does."""
    now = utcnow()
    rows = []
    for n in range(count):
        at = now - timedelta(days=360 * n / count)
        rows.append({"user_id": member.id, "kind": "earn", "points": 1, "growth": 1, "rule": "like_received",
                     "reason": "Like received", "key": f"bulk:{n}", "day": shanghai_day(at), "created_at": at,
                     "expires_at": expiry_for(at)})
    db.session.execute(insert(PointsPosting), rows)


def test_bulk_inserted_postings_need_a_recache_and_get_it(factories):
    member = factories.user()
    award(member, "referral", key="r")
    db.session.commit()
    _bulk_postings(member, 50)
    db.session.commit()
    assert verify_standings_of(member)  # the row missed what went in around the ORM
    assert recache_standings(user_ids=[member.id]) == 1
    db.session.commit()
    assert verify_standings_of(member) == []
    assert balance_of(member) == 150


def verify_standings_of(member) -> list[str]:
    return verify_standings({member.id: list(db.session.scalars(
        select(PointsPosting).where(PointsPosting.user_id == member.id)
        .order_by(PointsPosting.created_at, PointsPosting.id)))})


def test_points_pages_cost_the_same_queries_with_5_or_500_postings(login_as, factories, statements):
    few = factories.user()
    for i in range(4):
        award(few, "story_featured", cause=("test", str(i)))
    spend(few, 50, cause=("test", "s"))
    many = factories.user()
    _bulk_postings(many, 500)
    db.session.commit()
    assert recache_standings(user_ids=[many.id]) == 1  # what a bulk writer calls after its inserts
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(PointsPosting.user_id == many.id)) == 500

    def read(member, path):
        client = login_as(member)
        client.get(path)  # the first view of the day also records the member's active day
        with statements() as seen:
            assert client.get(path).status_code == 200
        return seen

    for path in ("/me/points", "/rewards", "/me"):
        small, large = read(few, path), read(many, path)
        assert len(small) == len(large), (path, small, large)
        assert len(large) <= 10, (path, large)
        # No statement reads the member's whole ledger: the history page at most.
        assert not [s for s in large if "FROM points_ledger" in s and "LIMIT" not in s], path


def test_concurrent_postings_and_a_page_deriving_the_standing_leave_it_right(app, factories, communities):
    writer = factories.user(login="13900005555", verified=True)
    communities["ev"].join(writer)
    fans = [factories.user(login=f"1390002{i:04d}", verified=True) for i in range(4)]
    story = save_story(writer, StoryInput(communities["ev"], "冬天续航实测", "提车三个月，电池健康度还是 98%。", []),
                       publish=True)
    db.session.commit()
    own = session_cookie_for(app, writer)
    fan_cookies = [session_cookie_for(app, fan) for fan in fans]

    def post(path, cookie, **data):
        def call(http):
            return http.post(f"{server.url}{path}", cookies={"session": cookie}, headers={"HX-Request": "true"},
                             data=data, timeout=60)
        return call

    def page(http):
        return http.get(f"{server.url}/me/points", cookies={"session": own}, timeout=60)

    with LiveServer(app) as server:
        for round_ in range(3):
            # An old posting leaves the row stale, so the pages below derive and store it meanwhile.
            award(writer, "referral", key=f"old:{round_}", now=utcnow() - timedelta(days=400))
            db.session.commit()
            calls = [post(f"/stories/{story.id}/comments", own, body=f"第 {round_} 轮补充 {i}", nonce=new_nonce())
                     for i in range(2)]
            calls += [post(f"/stories/{story.id}/like", c) for c in fan_cookies] if round_ == 0 else []
            responses = fire_at_once(calls + [page, page])
            assert [r.status_code for r in responses] == [200] * len(responses)
            db.session.rollback()
            assert verify_standings_of(writer) == [], round_
            row = row_of(writer)
            assert row.balance == db.session.scalar(select(func.sum(PointsPosting.points))
                                                    .where(PointsPosting.user_id == writer.id))
    # 3 old referrals, 6 comments, 4 likes: each one in the ledger and in the cached balance.
    assert db.session.scalar(select(func.count()).where(PointsPosting.user_id == writer.id)) == 3 + 6 + 4 + 1
    assert balance_of(writer) == truth(writer, utcnow())["balance"]


def test_a_transaction_reads_the_levels_once_and_the_next_one_sees_a_change(factories, statements,
                                                                            level_two_threshold):
    """An award reads the ladder for the multiplier, the standing and the rewrite of the cached
    row: one query for all of them, savepoints included; a threshold changed by another
    connection and committed is read by the next transaction."""
    from sqlalchemy import create_engine

    member = factories.user()
    award(member, "referral", cause=("test", "warm"))  # the rule and standing rows exist
    db.session.commit()
    with statements() as seen:
        award(member, "referral", cause=("test", "once"))
        level_of(member)
        db.session.commit()
    assert sum(" FROM levels" in s for s in seen) == 1, [s for s in seen if " FROM levels" in s]
    other = create_engine(db.engine.url.render_as_string(hide_password=False))
    try:
        with other.begin() as connection:
            connection.execute(update(Level).where(Level.number == 2).values(growth_threshold=50))
    finally:
        other.dispose()
    assert [level.growth_threshold for level in Level.ladder() if level.number == 2] == [50]
    assert level_of(member).number == 2  # its 60 growth reaches Lv.2 from 50 on


def _replays(seen: list[str]) -> list[str]:
    """The statements among SEEN that read a member's whole ledger to replay it."""
    return [s for s in seen if "FROM points_ledger" in s and "ORDER BY points_ledger.created_at" in s]


def test_a_credit_moves_the_standing_on_without_a_replay_and_ends_where_the_replay_does(factories, statements):
    """An award or refund that is the member's newest posting moves the stored row on in place
    (no read of the whole ledger); anything else (a debit, a backdated credit, past the row's
    valid_until) replays. Over two years of random postings, every row stays what `derive`
    makes of the ledger, field by field: the same check `points verify` runs."""
    import random

    rng = random.Random(13)
    member, admin = factories.user(), factories.user(role="admin")
    rules = ["story_featured", "comment", "like_received", "story_posted", "referral"]
    at, fast, replayed, kinds = T0, 0, 0, set()
    for n in range(160):
        at += timedelta(hours=rng.choice([1, 5, 20, 26, 49, 24 * 30]))
        roll = rng.random()
        with statements() as seen:
            if roll < 0.55:
                award(member, rng.choice(rules), cause=("test", str(n)), now=at)
                kind = "award"
            elif roll < 0.7:
                award(member, "checkin", key=f"checkin:{shanghai_day(at).isoformat()}", now=at)
                kind = "checkin"
            elif roll < 0.8:
                refund(member, rng.randint(1, 40), cause=("test", f"r{n}"), now=at)
                kind = "refund"
            elif roll < 0.9 and spendable_balance(member, at) > 10:
                spend(member, rng.randint(1, 10), cause=("test", f"s{n}"), now=at)
                kind = "spend"
            elif roll < 0.95:  # backdated: not the newest posting, so it must replay
                award(member, "comment", cause=("test", f"old{n}"), now=at - timedelta(days=rng.randint(1, 60)))
                kind = "backdated"
            else:
                adjust(member, rng.choice([-5, 15]), "更正", admin, key=f"adj{n}", now=at)
                kind = "adjust"
            db.session.commit()
        kinds.add(kind)
        assert verify_standings_of(member) == [], (n, kind)
        if kind in ("award", "checkin", "refund") and not _replays(seen):
            fast += 1
        if kind in ("backdated", "spend"):
            assert _replays(seen), (n, kind)
            replayed += 1
    assert kinds >= {"award", "checkin", "refund", "spend", "backdated", "adjust"}
    assert replayed and fast > 60, (fast, replayed)  # most credits took the fast way
    # A year and more later every lot expired and all growth aged out (the level job restates
    # the row): the next award is the only thing that will change with time, twice over.
    at += timedelta(days=400)
    refresh_standing(member, at)
    db.session.commit()
    assert Standing.from_row(row_of(member)).valid_until is None
    with statements() as seen:
        award(member, "story_featured", cause=("test", "after"), now=at + timedelta(hours=1))
        db.session.commit()
    assert not _replays(seen)
    assert verify_standings_of(member) == []
