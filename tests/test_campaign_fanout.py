"""A campaign's fan-out at size, through real job runners: 1,000 subscribers in thread mode and
on a real Redis (RQ), and a real worker process killed mid-way and started again. Each member
is targeted exactly once; each device gets the campaign at least once and at most twice; the
report adds up (targeted = delivered + failed + gone + not reachable).

A safety recall is the campaign here: it is not marketing, so quiet hours never hold it back
whatever the hour the suite runs (the marketing clock is tested in tests/test_campaigns.py)."""
from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

import services.jobs
from sqlalchemy import func, insert, select, update

from models import JobRow, Notification, User, db
from models.campaigns import Audience, Campaign, CampaignTarget
from models.campaigns.editing import CampaignInput, save_campaign, send
from models.campaigns.report import report_of
from models.garage import Car, CarSeries
from models.nonces import new_nonce
from models.push import Delivery, PushSubscription
from models.types import utcnow
from tests.push_service import PushService, Subscriber
from tests.test_jobs import _test_redis_url
from tests.test_outbox import _finish, _python, _wait_for


@pytest.fixture
def service():
    with PushService() as push_service:
        yield push_service


def owners(service, devices: int, without_device: int = 0, *, gone=(), refused=()) -> tuple[int, dict]:
    """DEVICES members with one push device each (plus WITHOUT_DEVICE with none), all owning a car
    of one series; the devices numbered in GONE answer 410, those in REFUSED 400. Returns the
    series' make id and {endpoint path: member id}."""
    phone, now = Subscriber(), utcnow()
    series = db.session.scalars(select(CarSeries).order_by(CarSeries.id)).first()
    total = devices + without_device
    first = (db.session.scalar(select(func.max(User.id))) or 0) + 1
    db.session.execute(insert(User), [
        {"id": first + n, "nickname": f"车主{n}", "email": f"owner{n}@example.com", "password_hash": "x",
         "consent_version": "test", "consent_at": now, "created_at": now} for n in range(total)])
    ids = list(range(first, first + total))
    db.session.execute(insert(Car), [
        {"owner_id": u, "make_id": series.make_id, "series_id": series.id, "energy": "bev", "model_year": 2020,
         "created_at": now, "updated_at": now} for u in ids])
    paths = {}
    for n, user_id in enumerate(ids[:devices]):
        paths[f"/push/d{n}"] = user_id
        if n in gone:
            service.answer(f"d{n}", (410, {}))
        elif n in refused:
            service.answer(f"d{n}", (400, {}))
    db.session.execute(insert(PushSubscription), [
        {"user_id": user_id, "endpoint": service.origin + path, "p256dh": phone.p256dh, "auth": phone.auth,
         "label": "Android · Chrome", "categories": ["account"], "created_at": now}
        for path, user_id in paths.items()])
    db.session.commit()
    return series.make_id, paths


def recall_campaign(make_id: int) -> Campaign:
    admin = db.session.get(User, db.session.scalar(select(func.min(User.id))))
    row = save_campaign(admin, CampaignInput(kind="recall", title="安全气囊召回", body="请到店免费更换",
                                             link="/me/garage", channels=("push",),
                                             audience=Audience(make_id=make_id)), nonce=new_nonce())
    db.session.commit()
    return row


def settled(campaign_id: int) -> bool:
    db.session.rollback()
    campaign = db.session.get(Campaign, campaign_id)
    busy = db.session.scalar(select(func.count()).select_from(JobRow).where(JobRow.status.in_(("queued", "running"))))
    return campaign.status == "sent" and not busy


def assert_each_member_once_and_each_device_once_or_twice(service, campaign_id, paths, at_most=2):
    db.session.rollback()
    targets = db.session.execute(select(CampaignTarget.user_id, func.count()).where(
        CampaignTarget.campaign_id == campaign_id).group_by(CampaignTarget.user_id)).all()
    assert {user_id for user_id, _ in targets} == set(paths.values()) | set(_without_device(paths, campaign_id))
    assert {n for _, n in targets} == {1}
    notes = db.session.scalar(select(func.count()).select_from(Notification)
                              .where(Notification.dedupe_key == f"campaign:{campaign_id}"))
    assert notes == len(targets)
    posts = Counter(r.path for r in service.received)
    assert set(posts) == set(paths), "every device got the campaign"
    assert max(posts.values()) <= at_most
    return posts


def _without_device(paths, campaign_id):
    return set(db.session.scalars(select(CampaignTarget.user_id).where(
        CampaignTarget.campaign_id == campaign_id, CampaignTarget.user_id.not_in(list(paths.values())))))


@pytest.mark.parametrize("mode", ["thread", "rq"])
def test_a_campaign_to_1000_subscribers_completes_and_its_report_adds_up(app, make_app, factories, service, mode,
                                                                          monkeypatch):
    factories.user(role="admin")
    make_id, paths = owners(service, 1000, without_device=60, gone=range(0, 1000, 25), refused=range(1, 1000, 50))
    config = {"PUSH_ALLOW_PRIVATE_ENDPOINTS": True, "PUSH_TIMEOUT": 5, "CAMPAIGN_BATCH": 250}
    if mode == "rq":
        runner_app = make_app("rq", REDIS_URL=_test_redis_url(), **config)
        runner_app.extensions["jobs"].redis.flushdb()
        monkeypatch.setattr(services.jobs, "_worker_app", runner_app)  # what `flask worker` hands RQ's jobs
    else:
        runner_app = make_app("thread", **config)
    with runner_app.app_context():
        campaign = recall_campaign(make_id)
        send(db.session.get(User, campaign.created_by_id), campaign)
        db.session.commit()  # thread mode starts the runner here; RQ gets each row id
        campaign_id = campaign.id
        if mode == "rq":
            from rq import SimpleWorker

            runner = runner_app.extensions["jobs"]
            while not settled(campaign_id):
                SimpleWorker([runner.queue], connection=runner.redis).work(burst=True)
                runner.dispatcher.run_due()  # what the worker's poller does for rows RQ never got
            runner.redis.flushdb()
        else:
            assert _wait_for(lambda: settled(campaign_id), timeout=120)
        db.session.remove()

    posts = assert_each_member_once_and_each_device_once_or_twice(service, campaign_id, paths, at_most=1)
    assert sum(posts.values()) == 1000
    report = report_of(db.session.get(Campaign, campaign_id))
    assert report.targeted == 1060
    assert report.channels["push"] == {"queued": 0, "sent": 940, "failed": 20, "gone": 40}
    assert report.outcomes == {"delivered": 940, "failed": 20, "gone": 40, "waiting": 0, "unreachable": 60}
    assert report.adds_up
    assert db.session.scalar(select(func.count()).select_from(PushSubscription)) == 960  # the gone are deleted


def test_a_worker_killed_mid_campaign_targets_each_member_once_after_restart(app, make_app, factories, service,
                                                                             tmp_path):
    factories.user(role="admin")
    make_id, paths = owners(service, 300)
    service.delay = 0.02  # a slow push service: the kill lands while batches are in flight
    quiet = make_app("thread")  # queues the start and leaves it to the worker process
    quiet.extensions["jobs"].autostart = False
    with quiet.app_context():
        campaign = recall_campaign(make_id)
        send(db.session.get(User, campaign.created_by_id), campaign)
        db.session.commit()
        campaign_id = campaign.id
        db.session.remove()
    db.session.rollback()  # a fresh look at what the other app committed
    campaign = db.session.get(Campaign, campaign_id)
    env = {"PUSH_ALLOW_PRIVATE_ENDPOINTS": "1", "PUSH_TIMEOUT": "5", "PUSH_THREADS": "4", "CAMPAIGN_BATCH": "30"}

    first = _worker_process(app, tmp_path, env)
    try:
        # Killed at a fixed point: once 90 delivery rows (three batches) are committed.
        assert _wait_for(lambda: _deliveries() >= 90 or first.poll() is not None, timeout=60)
        assert first.poll() is None, _finish(first)
        first.send_signal(signal.SIGKILL)
        _finish(first)
    finally:
        if first.poll() is None:
            first.kill()
    assert not settled(campaign.id)
    # Its leases would run out in minutes; a restart after that is what this shortens.
    db.session.execute(update(JobRow).where(JobRow.status == "running").values(locked_until=utcnow()))
    db.session.commit()
    time.sleep(0.05)

    second = _worker_process(app, tmp_path, env, burst=True)
    out = _finish(second, timeout=120)
    assert second.returncode == 0, out
    while not settled(campaign.id):  # a burst ends with what was due when it began; finish the rest
        second = _worker_process(app, tmp_path, env, burst=True)
        _finish(second, timeout=120)
    posts = assert_each_member_once_and_each_device_once_or_twice(service, campaign.id, paths)
    report = report_of(db.session.get(Campaign, campaign.id))
    assert report.targeted == 300 and report.outcomes["delivered"] == 300 and report.adds_up
    assert report.channels["push"]["sent"] == 300
    print(f"after the kill: {sum(posts.values()) - 300} devices got the campaign twice")


def _deliveries() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Delivery))


def _worker_process(app, tmp_path, env, burst=False):
    import os

    code = "from flask.cli import main\nmain()\n"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return _python(code, "--app", "app", "worker", *(["--burst"] if burst else []), app=app, tmp_path=tmp_path)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
