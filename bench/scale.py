"""Cheyou at the size the business plan aims for, bulk-inserted: the data `make bench` measures
the pages on (issue #13).

    .venv/bin/python bench/scale.py [--factor 1.0] [--database URL] [--seed 1]

At factor 1: 20,045 members, 100,007 published stories (10,007 of them in the last 30 days)
with their search index, 500,055 likes, 200,016 comments (one story carries 200 of them, for
the story page), 2,009 events with 40,123 registrations, and 1,001,200 ledger postings (the
benchmark member has 527 of them). A smaller factor shrinks every count alike (the tests run it
at a thousandth). Everything goes in through SQLAlchemy Core inserts of many rows at once, in
one transaction per table, with the same columns the app writes — texts rendered and indexed by
the app's own `render_markdown` and `story_terms` — so the pages read it as they read real data.

Stories draw their title and body from a pool of texts (rendered and tokenized once each),
with a number in each title, so the index has the shape of real stories at a fraction of the
tokenizing. Ledger postings are earnings of the last 360 days only (nothing has expired yet).

SQLite by default (a new file in a temporary directory, whose path is printed); with
`--database postgresql://…/cheyou_bench…` on PostgreSQL (emptied first, see benchdb.py).
The benchmark member logs in as `bench@cheyou.example` / `bench-password` and belongs to
all four communities.
"""
from __future__ import annotations

import argparse
import random
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchdb import describe, make_app  # noqa: E402

VIEWER_LOGIN = "bench@cheyou.example"
VIEWER_PASSWORD = "bench-password"
CHUNK = 20_000

SIZES = {"members": 20_045, "stories": 100_007, "recent_stories": 10_007, "likes": 500_055,
         "comments": 200_016, "big_story_comments": 200, "events": 2_009, "registrations": 40_123,
         "postings": 1_001_200, "viewer_postings": 527}

_OPENINGS = ["提车三个月", "开了两年", "刚过完户", "第一次自驾", "换了新轮胎", "做完保养", "冬天到了", "跑了五万公里",
             "二手入手", "朋友推荐"]
_SUBJECTS = ["电池续航", "充电桩", "刹车片", "空调滤芯", "轮胎气压", "车漆划痕", "保险续保", "过户手续", "底盘异响",
             "座椅加热", "倒车影像", "油耗", "变速箱", "车机系统", "改装排气"]
_FINDINGS = ["比想象中省心，分享一下经验。", "踩了不少坑，大家注意。", "4S店报价太高，最后在外面修好了。",
             "掉了两成，原因找到了。", "开起来安静多了，推荐。", "问了几家店，价格差很多。",
             "自己动手半小时搞定，附上步骤。", "记录一下全过程，供新手参考。"]


@dataclass
class Text:
    title: str
    body: str
    body_html: str
    terms: dict


def text_pool(rng: random.Random, size: int = 300) -> list[Text]:
    """SIZE distinct story texts, rendered and tokenized once by the app's own functions."""
    from models.markup import render_markdown
    from models.search_index import story_terms

    pool = []
    for n in range(size):
        opening, subject, finding = rng.choice(_OPENINGS), rng.choice(_SUBJECTS), rng.choice(_FINDINGS)
        other = rng.choice(_SUBJECTS)
        title = f"{opening}，{subject}实测"
        body = (f"{opening}，说说{subject}。{finding}\n\n另外{other}也值得关注：{rng.choice(_FINDINGS)}"
                f" 第{n}篇。")
        pool.append(Text(title, body, render_markdown(body), story_terms(title, body)))
    return pool


def scaled(factor: float) -> dict:
    sizes = {name: max(1, round(count * factor)) for name, count in SIZES.items()}
    sizes["big_story_comments"] = min(SIZES["big_story_comments"], sizes["comments"])
    sizes["viewer_postings"] = min(SIZES["viewer_postings"], sizes["postings"])
    sizes["recent_stories"] = min(sizes["recent_stories"], sizes["stories"])
    return sizes


def _insert(model, rows) -> None:
    """ROWS (a list or an iterator of dicts) into MODEL's table, CHUNK at a time.

    Core's executemany on the session's connection: the column types' bind processing and
    defaults still apply, but not the ORM's bulk path, which spent three quarters of the time
    collecting each row's insert (20 of 24 s at factor 0.1)."""
    from sqlalchemy import insert

    from models import db

    statement = insert(model.__table__)
    connection = db.session.connection()
    indexes = _secondary_indexes(connection, model.__tablename__)
    for name in indexes:  # built once after the load, not row by row: 199 s to 154 s at full scale
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            connection.execute(statement, batch)
            batch = []
    if batch:
        connection.execute(statement, batch)
    for ddl in indexes.values():
        connection.exec_driver_sql(ddl)


def _secondary_indexes(connection, table: str) -> dict[str, str]:
    """TABLE's indexes that no constraint owns, name → the database's own CREATE INDEX (so what
    is rebuilt is exactly what the migrations made, partial indexes included)."""
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))
    else:
        rows = connection.exec_driver_sql(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " WHERE x.indrelid = %s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)",
            (table,))
    return dict(rows.all())


def _ids(column) -> list[int]:
    from sqlalchemy import select

    from models import db

    return list(db.session.scalars(select(column).order_by(column)))


def generate(app, factor: float = 1.0, seed: int = 1, log=print) -> dict:
    """Fill APP's empty, migrated database; returns the counts written and the ids benches use."""
    from sqlalchemy import text

    from demo import ensure_communities
    from models import Membership, User, db
    from models.communities import recount_members
    from models.accounts import grant_role
    from models.engagement import Comment, StoryLike
    from models.events.model import Event, Registration
    from models.loyalty import recache_standings
    from models.loyalty.ledger import PointsPosting, expiry_for
    from models.loyalty.rules import EarningRule, Level
    from models.search_index import StoryTerm
    from models.stories import Story, recount_stories
    from models.types import shanghai_day, utcnow

    rng = random.Random(seed)
    sizes = scaled(factor)
    now = utcnow().replace(microsecond=0)
    timings = {}

    def step(name):
        timings[name] = time.perf_counter()
        log(f"[scale] {name}…")

    def since(name):
        return time.perf_counter() - timings[name]

    with app.app_context():
        step("members")
        communities = list(ensure_communities().values())
        community_ids = [c.id for c in communities]
        viewer = User(nickname="压测车友", email=VIEWER_LOGIN, password_hash=User.hash_password(VIEWER_PASSWORD),
                      consent_version="bench", phone="13000000000", phone_verified_at=now - timedelta(days=400),
                      created_at=now - timedelta(days=400))
        admin = User(nickname="压测运营", email="admin@cheyou.example", password_hash=viewer.password_hash,
                     consent_version="bench", created_at=now - timedelta(days=400))
        db.session.add_all([viewer, admin])
        db.session.flush()
        grant_role(admin, "admin")
        for community in communities:
            community.join(viewer)
        _insert(User, ({
            "nickname": f"车友{n:05d}", "password_hash": "x", "consent_version": "bench",
            "email": f"member{n}@bench.example", "phone": f"14{n:09d}",
            "created_at": (joined := now - timedelta(days=rng.randint(1, 720), seconds=rng.randint(0, 86_399))),
            "consent_at": joined, "phone_verified_at": joined,
            "last_active_on": shanghai_day(now - timedelta(days=rng.randint(0, 120))),
        } for n in range(sizes["members"] - 2)))
        members = _ids(User.id)
        others = [m for m in members if m not in (viewer.id, admin.id)]
        _insert(Membership, ({"user_id": m, "community_id": c, "joined_at": now - timedelta(days=rng.randint(0, 700))}
                             for m in others for c in rng.sample(community_ids, rng.choice((1, 1, 2, 3)))))
        recount_members()  # the counters, for the rows written in bulk
        db.session.commit()
        log(f"[scale] {len(members):,} members in {since('members'):.1f} s")

        step("stories")
        pool = text_pool(rng)
        old = sizes["stories"] - sizes["recent_stories"]
        published = sorted(
            [now - timedelta(days=rng.uniform(30, 730)) for _ in range(old)]
            + [now - timedelta(days=rng.uniform(0, 30)) for _ in range(sizes["recent_stories"])]
        )
        texts = []

        def story_rows():
            for n, at in enumerate(published):
                text = pool[n % len(pool)]
                texts.append(text)
                at = at.replace(microsecond=0)
                yield {"community_id": rng.choice(community_ids), "author_id": rng.choice(others),
                       "title": f"{text.title} {n}", "body": text.body, "body_html": text.body_html,
                       "tags": [rng.choice(["purchase", "tips", "build", "traps"])], "status": "published",
                       "created_at": at, "updated_at": at, "published_at": at}

        _insert(Story, story_rows())
        stories = _ids(Story.id)  # in publication order, as inserted
        story_at = dict(zip(stories, published))
        _insert(StoryTerm, ({"story_id": sid, "term": term, "weight": weight}
                            for sid, text, n in zip(stories, texts, range(len(stories)))
                            for term, weight in {**text.terms, str(n): 3}.items()))
        db.session.commit()
        log(f"[scale] {len(stories):,} stories with their index in {since('stories'):.1f} s")

        step("likes and comments")
        recent = [s for s in stories if story_at[s] > now - timedelta(days=30)]
        pairs = set()
        while len(pairs) < sizes["likes"]:  # a third of the likes go to the last 30 days' stories
            story = rng.choice(recent) if recent and rng.random() < 0.33 else rng.choice(stories)
            pairs.add((story, rng.choice(members)))

        def like_at(story):
            return min(now, story_at[story] + timedelta(hours=rng.uniform(0, 72)))

        _insert(StoryLike, ({"story_id": s, "user_id": u, "created_at": like_at(s)} for s, u in pairs))
        big_story = recent[-1] if recent else stories[-1]

        def comment_rows():
            for n in range(sizes["comments"]):
                story = big_story if n < sizes["big_story_comments"] else (
                    rng.choice(recent) if recent and rng.random() < 0.33 else rng.choice(stories))
                yield {"story_id": story, "author_id": rng.choice(members), "body": f"说得好，{rng.choice(_FINDINGS)}",
                       "status": "published", "created_at": min(now, story_at[story] + timedelta(minutes=n % 4000 + 1))}

        _insert(Comment, comment_rows())
        recount_stories()  # the counts each story keeps, for the rows written in bulk
        db.session.commit()
        log(f"[scale] {len(pairs):,} likes and {sizes['comments']:,} comments in {since('likes and comments'):.1f} s")

        step("events")
        organizers = rng.sample(others, min(40, len(others)))

        def event_rows():
            for n in range(sizes["events"]):
                starts = (now + timedelta(days=rng.uniform(-700, 60))).replace(microsecond=0)
                done = starts < now - timedelta(days=1)
                yield {"community_id": rng.choice(community_ids), "organizer_id": rng.choice(organizers),
                       "kind": "meetup", "title": f"车友聚会 {n}", "description": "一起聊车。",
                       "description_html": "<p>一起聊车。</p>", "starts_at": starts,
                       "ends_at": starts + timedelta(hours=3), "place": "滨江公园停车场", "address": "滨江大道1号",
                       "map_url": "https://uri.amap.com/search?keyword=%E6%BB%A8%E6%B1%9F", "capacity": 40,
                       "signup_opens_at": starts - timedelta(days=14), "signup_closes_at": starts - timedelta(hours=2),
                       "cancel_deadline": starts - timedelta(days=1), "status": "completed" if done else "published",
                       "created_at": starts - timedelta(days=20), "updated_at": starts - timedelta(days=20),
                       "published_at": starts - timedelta(days=20), "completed_at": starts + timedelta(hours=6) if done else None}

        _insert(Event, event_rows())
        events = _ids(Event.id)
        # As even as the count allows; the last event takes what is left (capped by the members).
        counts = [sizes["registrations"] // len(events)] * len(events)
        counts[-1] += sizes["registrations"] - sum(counts)

        def registration_rows():
            for event, take in zip(events, counts):
                for seq, member in enumerate(rng.sample(members, min(take, len(members))), start=1):
                    yield {"event_id": event, "user_id": member, "state": "confirmed", "seq": seq,
                           "ticket_token": secrets.token_urlsafe(18), "code": f"{seq:06d}",
                           "created_at": now - timedelta(days=30), "confirmed_at": now - timedelta(days=30)}

        _insert(Registration, registration_rows())
        db.session.commit()
        log(f"[scale] {len(events):,} events in {since('events'):.1f} s")

        step("ledger")
        rules = {r.code: r for r in db.session.query(EarningRule).filter(
            EarningRule.code.in_(["story_posted", "comment", "like_received", "event_attended"]))}
        rule_codes = list(rules)
        viewer_rows = sizes["viewer_postings"]
        rest = sizes["postings"] - viewer_rows
        growth_of = {}

        def posting_rows():
            for n in range(sizes["postings"]):
                member = viewer.id if n < viewer_rows else others[(n - viewer_rows) % len(others)]
                rule = rules[rule_codes[n % len(rule_codes)]]
                at = (now - timedelta(days=rng.uniform(0, 360))).replace(microsecond=0)
                growth_of[member] = growth_of.get(member, 0) + rule.growth
                yield {"user_id": member, "kind": "earn", "points": rule.points, "growth": rule.growth,
                       "rule": rule.code, "reason": rule.label, "key": f"bench:{n}", "day": shanghai_day(at),
                       "created_at": at, "expires_at": expiry_for(at)}

        _insert(PointsPosting, posting_rows())
        thresholds = sorted((lv.growth_threshold, lv.number) for lv in db.session.query(Level))
        by_level = {}
        for member, growth in growth_of.items():
            number = max(num for threshold, num in thresholds if growth >= threshold)
            by_level.setdefault(number, []).append(member)
        for number, ids in by_level.items():
            for start in range(0, len(ids), 900):
                db.session.query(User).filter(User.id.in_(ids[start:start + 900])).update(
                    {User.level_number: number}, synchronize_session=False)
        db.session.commit()
        log(f"[scale] {sizes['postings']:,} postings in {since('ledger'):.1f} s ({rest:,} for the others)")
        step("standings")
        cached = recache_standings()  # the rows the ORM would have kept with each posting
        db.session.commit()
        log(f"[scale] {cached:,} cached points standings in {since('standings'):.1f} s")
        step("statistics")
        db.session.execute(text("ANALYZE"))  # the planner's statistics, as a live database keeps them
        db.session.commit()
        log(f"[scale] statistics in {since('statistics'):.1f} s")

        return {"sizes": sizes, "viewer_id": viewer.id, "admin_id": admin.id, "big_story_id": big_story,
                "event_id": next((e for e in reversed(events)), None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=float, default=1.0)
    parser.add_argument("--database", help="a PostgreSQL URL (its name containing 'bench'); default a new SQLite file")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    app = make_app(args.database, "cheyou-scale-", JOBS_MODE="eager")
    started = time.perf_counter()
    made = generate(app, args.factor, args.seed)
    print(f"[scale] {describe(app)}: done in {time.perf_counter() - started:.1f} s — "
          + ", ".join(f"{k} {v:,}" for k, v in made["sizes"].items()))
    print(f"[scale] database: {app.config['SQLALCHEMY_DATABASE_URI']}")


if __name__ == "__main__":
    main()
