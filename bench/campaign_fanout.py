"""A campaign to 10,000 devices end to end, timed from `send()`'s commit to the last delivery
recorded, against raw `services.push.send_deliveries` of as many pre-made rows in the same run.

    .venv/bin/python bench/campaign_fanout.py [--devices 10000] [--database URL] [--delay 0]

10,000 members, each with one Web Push subscription (keys of tests/push_service.Subscriber)
pointing at a push service on 127.0.0.1 (a separate process answering 201, bench/push_fanout.py's)
and one car of the same make, bulk-inserted. The campaign is a safety recall (not marketing: no
quiet hours, so it runs at any hour) to Audience(make_id=…) by push. After `send()` commits,
this process runs the outbox as the thread-mode runner does (JOBS_MODE "thread", the
dispatcher's claim-and-run loop) until no job is due: the fan-out batches (CAMPAIGN_BATCH
members each, in member-id order) and their push batches.

The baseline: the same number of queued push deliveries (one inbox row each, to the same
devices) sent by `send_deliveries` in batches of the same size, with no fan-out. The ratio
campaign ÷ baseline is the campaign layer's overhead (targets, inbox rows, delivery rows, jobs).
SQLite by default; `--database postgresql://…/cheyou_benchdemo` runs on PostgreSQL (emptied first).
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchdb import describe, make_app  # noqa: E402
from push_fanout import receiver  # noqa: E402


def seed(app, count: int, endpoint: str) -> dict:
    """COUNT members with a device and a car of one make, an admin, and COUNT queued deliveries
    (the baseline's) to those devices. Returns the ids the run needs."""
    from sqlalchemy import insert, select

    from models import Notification, User, db
    from models.garage import Car, CarSeries
    from models.push import Delivery, PushSubscription
    from models.types import utcnow
    from tests.push_service import Subscriber

    phone = Subscriber()
    now = utcnow()
    with app.app_context():
        admin = User(nickname="运营", email="admin@bench.example", password_hash="x", consent_version="bench")
        db.session.add(admin)
        db.session.flush()
        series = db.session.scalars(select(CarSeries).order_by(CarSeries.id)).first()
        db.session.execute(insert(User), [
            {"nickname": f"车友{n}", "email": f"bench{n}@example.com", "password_hash": "x",
             "consent_version": "bench", "consent_at": now, "created_at": now} for n in range(count)])
        users = list(db.session.scalars(select(User.id).where(User.id != admin.id).order_by(User.id)))
        db.session.execute(insert(PushSubscription), [
            {"user_id": u, "endpoint": f"{endpoint}/push/{u}", "p256dh": phone.p256dh, "auth": phone.auth,
             "label": "Android · Chrome", "categories": ["events", "replies", "loyalty", "account", "campaigns"],
             "created_at": now} for u in users])
        db.session.execute(insert(Car), [
            {"owner_id": u, "make_id": series.make_id, "series_id": series.id, "energy": series.energy,
             "model_year": 2018 + u % 6, "created_at": now, "updated_at": now} for u in users])
        db.session.execute(insert(Notification), [
            {"user_id": u, "kind": "event_reminder", "params": {"time": "09:00", "title": "周末洗车聚会", "place": "世纪公园"},
             "link": "/events", "created_at": now} for u in users])
        subs = dict(db.session.execute(select(PushSubscription.user_id, PushSubscription.id)).all())
        notes = dict(db.session.execute(select(Notification.user_id, Notification.id)).all())
        db.session.execute(insert(Delivery), [
            {"notification_id": notes[u], "channel": "push", "subscription_id": subs[u], "status": "queued",
             "attempts": 0, "created_at": now} for u in users])
        db.session.commit()
        baseline = list(db.session.scalars(select(Delivery.id).order_by(Delivery.id)))
        return {"admin": admin.id, "make": series.make_id, "baseline": baseline}


def run_baseline(app, ids: list[int], batch: int) -> float:
    from services.push import send_deliveries

    started = time.perf_counter()
    for at in range(0, len(ids), batch):
        with app.app_context():
            send_deliveries(ids[at:at + batch])
    return time.perf_counter() - started


def run_campaign(app, admin_id: int, make_id: int, runners: int = 1):
    """Create and send the recall, then run the outbox until no job is due, in RUNNERS threads
    (one: the thread-mode runner; more: several runner processes or RQ workers). Returns
    (seconds from the send's commit to the last job's end, seconds per job name, jobs run,
    the campaign id)."""
    from sqlalchemy import func, select

    from models import JobRow, User, db
    from models.campaigns import Audience
    from models.campaigns.editing import CampaignInput, save_campaign, send
    from models.nonces import new_nonce
    from models.types import utcnow

    dispatcher = app.extensions["jobs"].dispatcher
    with app.app_context():
        admin = db.session.get(User, admin_id)
        campaign = save_campaign(admin, CampaignInput(
            kind="recall", title="制动软管可能磨损", body="请尽快到店免费检查，约 30 分钟。", link="/me/garage",
            channels=("push",), audience=Audience(make_id=make_id)), nonce=new_nonce())
        db.session.commit()
        send(admin, campaign)
        db.session.commit()  # the clock starts here: the fan-out's first job is now due
        started = time.perf_counter()
        campaign_id = campaign.id
    spent, runs = defaultdict(float), defaultdict(int)
    lock = threading.Lock()

    def running() -> int:
        return dispatcher._in_session(lambda s: s.scalar(
            select(func.count()).select_from(JobRow).where(JobRow.status == "running")), write=False)

    def serve():  # Dispatcher.run_due, timing each job; with other runners, until all are idle
        while True:
            claims = dispatcher.claim(utcnow())
            if not claims:
                if runners == 1 or running() == 0:
                    return
                time.sleep(0.02)  # another runner's job may queue more
                continue
            for claim in claims:
                began = time.perf_counter()
                outcome = dispatcher.run_claim(claim)
                if outcome.error is not None:
                    print(f"job {claim.name}{claim.args} failed: {outcome.error!r}", file=sys.stderr)
                with lock:
                    spent[claim.name] += time.perf_counter() - began
                    runs[claim.name] += 1

    threads = [threading.Thread(target=serve, name=f"bench-runner-{n}") for n in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, spent, runs, campaign_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--database", default=None, help="a database URL (default: a fresh SQLite file); "
                        "a PostgreSQL database is emptied first, and its name must contain 'bench'")
    parser.add_argument("--batch", type=int, default=500, help="CAMPAIGN_BATCH, also the baseline's batch size")
    parser.add_argument("--threads", type=int, default=32, help="PUSH_THREADS")
    parser.add_argument("--delay", type=int, default=0, help="the push service's answer delay, ms")
    parser.add_argument("--runners", type=int, default=1, help="threads running the outbox (1: thread mode's one "
                        "runner; more: as several runner processes or RQ workers would)")
    args = parser.parse_args()

    ports = multiprocessing.Queue()
    server = multiprocessing.Process(target=receiver, args=(ports, args.delay), daemon=True)
    server.start()
    port = ports.get(timeout=10)
    try:
        app = make_app(args.database, "cheyou-campaign-bench-", JOBS_MODE="thread", PUSH_ALLOW_PRIVATE_ENDPOINTS=True,
                       PUSH_THREADS=args.threads, CAMPAIGN_BATCH=args.batch)
        app.extensions["jobs"].autostart = False  # this process runs the outbox itself, below
        began = time.perf_counter()
        ids = seed(app, args.devices, f"http://127.0.0.1:{port}")
        print(f"{describe(app)}: {args.devices:,} members, devices and cars inserted in "
              f"{time.perf_counter() - began:.1f} s; push service answers after {args.delay} ms; "
              f"{args.threads} sending threads, batches of {args.batch}, {args.runners} outbox runner(s)")

        base = run_baseline(app, ids["baseline"], args.batch)
        print(f"baseline  send_deliveries: {len(ids['baseline']):,} deliveries in {base:.2f} s "
              f"= {len(ids['baseline']) / base:,.0f} deliveries/s")

        seconds, spent, runs, campaign_id = run_campaign(app, ids["admin"], ids["make"], args.runners)
        with app.app_context():
            from sqlalchemy import func, select

            from models import JobRow, db
            from models.campaigns import Campaign
            from models.campaigns.report import report_of

            campaign = db.session.get(Campaign, campaign_id)
            report = report_of(campaign)
            waiting = db.session.scalar(select(func.count()).select_from(JobRow)
                                        .where(JobRow.status.in_(("queued", "running"))))
            push = report.channels["push"]
            print(f"campaign  send() commit → last delivery recorded: {seconds:.2f} s "
                  f"= {push['sent'] / seconds:,.0f} deliveries/s = {seconds / base:.2f}× the baseline "
                  f"(target: under 30 s)")
            jobs = "; ".join(f"{name.rsplit('.', 1)[-1]} ×{runs[name]} {spent[name]:.2f} s" for name in sorted(spent))
            print(f"          job time (summed over runners): {jobs}")
            print(f"          status {campaign.status}; report: targeted {report.targeted:,}, push {push}, "
                  f"outcomes {report.outcomes}, adds_up {report.adds_up}; jobs still queued {waiting}")
            ok = (campaign.status == "sent" and report.targeted == args.devices and push["sent"] == args.devices
                  and report.adds_up)
        if not ok:
            raise SystemExit("the campaign did not reach every device once: see the report above")
        if seconds >= 30:
            print(f"over the 30 s target: {seconds:.1f} s", file=sys.stderr)
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
