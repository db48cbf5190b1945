"""The campaign audience builder's live count and sample at 20,000 members, against
`SELECT count(*) FROM users` measured in the same run.

    .venv/bin/python bench/audience_count.py [--members 20000] [--rounds 21] [--database URL] [--explain]

Members are bulk-inserted with a spread like the real one: memberships in the 4 communities
(1–3 each), levels 1–6, last active day over the last 120 days, ~40% opted in to marketing,
~30% with a car (assorted makes, series and model years from the garage dictionary), ~20% with
a Web Push device, ~50% with a verified mobile number. Each audience is timed through
`models.campaigns.audience.count` and `.sample` (median of ROUNDS runs, ms), then the admin's
live-count partial over HTTP (the test client, signed in as an admin) when the route
`/admin/campaigns/audience` exists. `--explain` prints each count's query plan (EXPLAIN QUERY
PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL). Target: the live count under 300 ms.
SQLite by default; `--database postgresql://…/cheyou_benchdemo` runs on PostgreSQL (emptied first).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchdb import describe, make_app, median_ms  # noqa: E402

TARGET_MS = 300


def seed(app, count: int, rng: random.Random) -> dict:
    """COUNT members spread as the module says; returns the ids the audiences use."""
    from sqlalchemy import insert, select

    from demo import ensure_communities
    from models import Membership, User, db
    from models.communities import recount_members
    from models.accounts import grant_role
    from models.garage import Car, CarMake, CarSeries
    from models.push import PushSubscription
    from models.types import SHANGHAI, utcnow

    now = utcnow()
    today = now.astimezone(SHANGHAI).date()
    categories = ["events", "replies", "loyalty", "account", "campaigns"]
    with app.app_context():
        communities = ensure_communities()
        admin = User(nickname="运营", email="admin@bench.example", password_hash="x", consent_version="bench")
        db.session.add(admin)
        db.session.flush()
        grant_role(admin, "admin")
        rows = []
        for n in range(count):
            created = now - timedelta(days=rng.randint(121, 720))
            verified = rng.random() < 0.5
            rows.append({
                "nickname": f"车友{n}", "password_hash": "x", "consent_version": "bench", "consent_at": created,
                "created_at": created, "level_number": rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 5, 6)),
                "last_active_on": today - timedelta(days=rng.randint(0, 120)),
                "marketing_opt_in": rng.random() < 0.4,
                "phone": f"13{n:09d}" if verified or rng.random() < 0.2 else None,
                "email": None if verified else f"bench{n}@example.com",
                "phone_verified_at": created if verified else None,
            })
        db.session.execute(insert(User), rows)
        users = list(db.session.scalars(select(User.id).where(User.id != admin.id).order_by(User.id)))
        slugs = list(communities)
        db.session.execute(insert(Membership), [
            {"user_id": u, "community_id": communities[slug].id, "joined_at": now}
            for u in users for slug in rng.sample(slugs, rng.choice((1, 1, 2, 3)))])
        recount_members()  # the counters, for the rows written in bulk
        series = list(db.session.scalars(select(CarSeries)))
        db.session.execute(insert(Car), [
            {"owner_id": u, "make_id": s.make_id, "series_id": s.id, "energy": s.energy,
             "model_year": rng.randint(2012, 2025), "created_at": now, "updated_at": now}
            for u in users if rng.random() < 0.3 for s in [rng.choice(series)]])
        db.session.execute(insert(PushSubscription), [
            {"user_id": u, "endpoint": f"https://push.example.com/{u}", "p256dh": "x", "auth": "x",
             "label": "Android · Chrome", "categories": categories, "created_at": now}
            for u in users if rng.random() < 0.2])
        byd = db.session.scalar(select(CarMake.id).where(CarMake.name == "比亚迪"))
        db.session.commit()
        return {"admin": admin.id, "ev": communities["ev"].id, "byd": byd}


def audiences(ids: dict) -> list[tuple[str, str, object]]:
    """(name, campaign kind, Audience) as an operator would build them."""
    from models.campaigns import Audience

    return [
        ("win-back: inactive ≥ 30 days, opted in", "winback", Audience(inactive_days=30, marketing_only=True)),
        ("win-back, reachable by push or SMS", "winback",
         Audience(inactive_days=30, marketing_only=True, reach="push_or_sms")),
        ("community ev, Lv.2–4", "announcement",
         Audience(community_ids=(ids["ev"],), level_min=2, level_max=4, marketing_only=True)),
        ("garage: BYD 2019–2022 battery electric", "recall",
         Audience(make_id=ids["byd"], year_from=2019, year_to=2022, energy="bev")),
        ("everyone reachable by push or SMS", "announcement", Audience(reach="push_or_sms", marketing_only=True)),
    ]


def form_data(kind: str, audience) -> dict:
    """The audience builder's fields as the campaign form posts them."""
    data = {"kind": kind, "title": "好久不见", "body": "回来看看", "link": "/", "channels": ["push"],
            "reach": audience.reach}
    for name in ("level_min", "level_max", "inactive_days", "make_id", "series_id", "year_from", "year_to",
                 "energy", "recall_id"):
        value = getattr(audience, name)
        if value is not None:
            data[name] = str(value)
    if audience.community_ids:
        data["community_ids"] = [str(i) for i in audience.community_ids]
    if audience.marketing_only:
        data["marketing_only"] = "y"
    return data


def explain(app, work) -> list[str]:
    """The plan of the last statement WORK runs (captured as sent, then run under EXPLAIN)."""
    from sqlalchemy import event

    from models import db

    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            work()
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        statement, parameters = [s for s in seen if s[0].lstrip().upper().startswith("SELECT")][-1]
        prefix = "EXPLAIN ANALYZE " if db.engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
        rows = db.session.connection().exec_driver_sql(prefix + statement, parameters).all()
        db.session.rollback()
    return [" | ".join(str(v) for v in row[-1:]) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--database", default=None, help="a database URL (default: a fresh SQLite file); "
                        "a PostgreSQL database is emptied first, and its name must contain 'bench'")
    parser.add_argument("--explain", action="store_true", help="print each count's query plan")
    args = parser.parse_args()

    from flask_login import FlaskLoginClient
    from sqlalchemy import text

    from models import User, db
    from models.campaigns import audience as audience_model
    from models.campaigns.editing import audience_of

    app = make_app(args.database, "cheyou-audience-bench-", JOBS_MODE="eager")
    began = time.perf_counter()
    ids = seed(app, args.members, random.Random(2026))
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("ANALYZE"))
            db.session.commit()
    print(f"{describe(app)}: {args.members:,} members inserted in {time.perf_counter() - began:.1f} s; "
          f"median of {args.rounds} runs")

    with app.app_context():
        baseline = median_ms(lambda: db.session.execute(text("SELECT count(*) FROM users")).scalar(), args.rounds)
        db.session.rollback()
    print(f"baseline SELECT count(*) FROM users: {baseline:.2f} ms")

    rule = next((r for r in app.url_map.iter_rules() if r.rule == "/admin/campaigns/audience"), None)
    app.test_client_class = FlaskLoginClient
    header = f"| audience | members | count ms | ÷ baseline | sample ms |{' HTTP ms |' if rule else ''}"
    print(header)
    print("|---|---:|---:|---:|---:|" + ("---:|" if rule else ""))
    slow = []
    for name, kind, audience in audiences(ids):
        audience = audience_of(kind, audience)
        with app.app_context():
            members = audience_model.count(audience)
            counted = median_ms(lambda: audience_model.count(audience), args.rounds)
            sampled = median_ms(lambda: audience_model.sample(audience), args.rounds)
            db.session.rollback()
        line = f"| {name} | {members:,} | {counted:.1f} | {counted / baseline:.1f}× | {sampled:.1f} |"
        if rule:
            with app.app_context():
                admin = db.session.get(User, ids["admin"])
                client = app.test_client(user=admin)
            data = form_data(kind, audience)
            if "POST" in rule.methods:
                def call():
                    return client.post(rule.rule, data=data, headers={"HX-Request": "true"})
            else:
                def call():
                    return client.get(rule.rule, query_string=data, headers={"HX-Request": "true"})
            answer = call()
            if answer.status_code != 200 or f"{members:,}" not in answer.get_data(as_text=True) \
                    and str(members) not in answer.get_data(as_text=True):
                line += f" answered {answer.status_code} without the count |"
            else:
                line += f" {median_ms(call, args.rounds):.1f} |"
        print(line)
        if counted >= TARGET_MS:
            slow.append(name)
        if args.explain:
            for step in explain(app, lambda: audience_model.count(audience)):
                print(f"    {step}")
    if not rule:
        print("(no /admin/campaigns/audience route in this checkout: the HTTP partial was not timed)")
    if slow:
        print(f"over the {TARGET_MS} ms target: {', '.join(slow)}", file=sys.stderr)


if __name__ == "__main__":
    main()
