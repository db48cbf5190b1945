"""Web Push end to end: notify() → the outbox → pywebpush → a push service on 127.0.0.1, whose
POST the test decrypts (aes128gcm, as the phone would) and whose VAPID JWT it verifies.
Retries run through the outbox's delayed rows (`run_due` with a moved clock)."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import JobRow, Notification, db, notify
from models.push import Delivery, PushSubscription, subscribe
from models.types import utcnow
from tests.push_service import PushService, Subscriber, vapid_claims

ANDROID_CHROME = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Mobile Safari/537.36")


@pytest.fixture
def service(app):
    """The local push service, and the app allowed to call it (http, loopback)."""
    app.config.update(PUSH_ALLOW_PRIVATE_ENDPOINTS=True, PUSH_TIMEOUT=2, PUSH_MAX_ATTEMPTS=3)
    with PushService() as push_service:
        yield push_service
    app.config.update(PUSH_ALLOW_PRIVATE_ENDPOINTS=False, PUSH_TIMEOUT=10, PUSH_MAX_ATTEMPTS=5)


def device(member, service, name, categories=None):
    subscriber = Subscriber()
    row = subscribe(member, service.endpoint(name), subscriber.p256dh, subscriber.auth, ANDROID_CHROME,
                    categories=categories, allow_private=True)
    db.session.commit()
    return row, subscriber


def deliveries(**where) -> list[Delivery]:
    db.session.rollback()  # a fresh look: what the jobs committed since
    return list(db.session.scalars(select(Delivery).filter_by(**where).order_by(Delivery.id)))


def run_later(app, seconds: float) -> int:
    """Run the outbox rows due SECONDS from now (the retries), as the worker would then."""
    return app.extensions["jobs"].run_due(utcnow() + timedelta(seconds=seconds))


def test_a_notification_reaches_the_device_encrypted_signed_and_exact(app, factories, service):
    member = factories.user(nickname="小王")
    sub, phone = device(member, service, "a")
    note = notify(member, "welcome", {"nickname": "小王"}, link="/communities")
    db.session.commit()  # the eager outbox runs the delivery job after the commit

    [message] = service.to("a")
    assert phone.decrypt(message) == {
        "title": "车友圈 · 账号与安全",
        "body": "欢迎来到车友圈，小王！加入一个社区开始吧。",
        "url": "/communities",
        "tag": f"cheyou-n{note.id}",
        "icon": "/static/img/icon-192.png",
        "badge": "/static/img/icon-192.png",
    }
    claims = vapid_claims(message, app.config["VAPID_PUBLIC_KEY"])
    assert claims["aud"] == service.origin
    assert claims["sub"] == app.config["VAPID_SUBJECT"]
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert message.headers["ttl"] == str(24 * 3600) and message.headers["urgency"] == "high"
    assert message.headers["topic"] == f"cheyou-n{note.id}"
    assert len(message.body) < 4096
    [delivery] = deliveries(notification_id=note.id)
    assert (delivery.channel, delivery.status, delivery.http_status, delivery.attempts) == ("push", "sent", 201, 1)
    assert delivery.sent_at is not None and delivery.subscription_id == sub.id
    assert db.session.get(PushSubscription, sub.id).last_success_at is not None


def test_every_device_gets_its_own_claims_and_the_members_language(app, factories, service):
    """pywebpush writes aud into the claims dict: each push service must see its own origin."""
    member = factories.user(locale="en")
    _, first = device(member, service, "first")
    with PushService() as other_service:
        _, second = device(member, other_service, "second")
        notify(member, "password_changed")
        db.session.commit()
        [to_other] = other_service.to("second")
    [to_first] = service.to("first")
    assert vapid_claims(to_first, app.config["VAPID_PUBLIC_KEY"])["aud"] == service.origin
    assert vapid_claims(to_other, app.config["VAPID_PUBLIC_KEY"])["aud"] == other_service.origin
    for phone, message in ((first, to_first), (second, to_other)):
        payload = phone.decrypt(message)
        assert payload["title"] == "Cheyou · Account and security"
        assert payload["body"] == "Your password was changed. Other devices have been signed out."
        assert payload["url"] == "/me/notifications"  # no link: the inbox
    assert [d.status for d in deliveries()] == ["sent", "sent"]


def test_a_repeated_notify_and_a_rerun_job_do_not_send_twice(app, factories, service):
    member = factories.user()
    device(member, service, "a")
    note = notify(member, "welcome", {"nickname": "x"}, dedupe_key="welcome")
    db.session.commit()
    notify(member, "welcome", {"nickname": "x"}, dedupe_key="welcome")
    db.session.commit()
    from services.channels import deliver_notification

    with app.app_context():  # the job again, as after a crash before it was marked done
        deliver_notification(note.id)
    assert len(service.to("a")) == 1
    assert len(deliveries()) == 1


def test_only_devices_taking_the_category_get_it(app, factories, service):
    member = factories.user()
    device(member, service, "all")
    device(member, service, "quiet", categories=["events", "account"])
    notify(member, "points_earned", {"points": 5, "reason": "签到"})
    db.session.commit()
    assert len(service.to("all")) == 1 and service.to("quiet") == []
    assert [d.status for d in deliveries()] == ["sent"]


def test_a_member_without_devices_gets_no_job_at_all(app, factories, service):
    member = factories.user()
    notify(member, "welcome", {"nickname": "x"})
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(JobRow)
                             .where(JobRow.name == "services.channels.deliver_notification")) == 0
    assert deliveries() == [] and service.received == []


def test_gone_subscriptions_are_deleted(app, factories, service):
    member = factories.user()
    gone_id = device(member, service, "gone")[0].id
    kept_id = device(member, service, "kept")[0].id
    service.answer("gone", (410, {}))
    note = notify(member, "welcome", {"nickname": "x"})
    db.session.commit()
    by_status = {d.status: d for d in deliveries(notification_id=note.id)}
    assert set(by_status) == {"gone", "sent"}
    assert by_status["gone"].http_status == 410 and by_status["gone"].subscription_id is None
    assert db.session.get(PushSubscription, gone_id) is None
    assert db.session.get(PushSubscription, kept_id) is not None
    assert run_later(app, 3600) == 0  # nothing left to retry


def test_not_found_is_gone_too(app, factories, service):
    member = factories.user()
    sub_id = device(member, service, "old")[0].id
    service.answer("old", (404, {}))
    notify(member, "welcome", {"nickname": "x"})
    db.session.commit()
    assert [d.status for d in deliveries()] == ["gone"]
    assert db.session.get(PushSubscription, sub_id) is None


def test_too_many_requests_is_retried_after_retry_after_and_delivered_once(app, factories, service):
    member = factories.user()
    _, phone = device(member, service, "busy")
    service.answer("busy", (429, {"Retry-After": "1"}), (201, {}))
    note = notify(member, "welcome", {"nickname": "x"})
    db.session.commit()
    [delivery] = deliveries()
    assert (delivery.status, delivery.http_status, delivery.attempts) == ("queued", 429, 1)
    [(run_at, name, args)] = app.extensions["jobs"].scheduled
    assert name == "services.push.retry_delivery" and args == (delivery.id,)
    assert timedelta(seconds=0) < run_at - utcnow() <= timedelta(seconds=1)  # Retry-After, not the back-off
    assert run_later(app, -0.5) == 0  # not due yet
    assert run_later(app, 2) == 1
    [delivery] = deliveries()
    assert (delivery.status, delivery.http_status, delivery.attempts) == ("sent", 201, 2)
    assert len(service.to("busy")) == 2
    assert phone.decrypt(service.to("busy")[-1])["tag"] == f"cheyou-n{note.id}"
    assert run_later(app, 3600) == 0


def test_a_push_service_failing_forever_gives_up_after_the_last_attempt(app, factories, service):
    member = factories.user()
    device(member, service, "broken")
    device(member, service, "fine")
    service.answer("broken", (500, {}))
    notify(member, "welcome", {"nickname": "x"})
    db.session.commit()
    ran = 0
    for _ in range(10):
        ran += run_later(app, 7200)
    broken, fine = deliveries()
    assert (broken.status, broken.http_status, broken.attempts) == ("failed", 500, 3)  # PUSH_MAX_ATTEMPTS
    assert ran == 2 and len(service.to("broken")) == 3
    assert (fine.status, fine.attempts) == ("sent", 1) and len(service.to("fine")) == 1
    assert db.session.get(PushSubscription, broken.subscription_id) is not None  # failing is not gone


def test_other_client_errors_fail_without_retry(app, factories, service):
    member = factories.user()
    device(member, service, "bad")
    service.answer("bad", (400, {}))
    notify(member, "welcome", {"nickname": "x"})
    db.session.commit()
    [delivery] = deliveries()
    assert (delivery.status, delivery.http_status, delivery.attempts) == ("failed", 400, 1)
    assert app.extensions["jobs"].scheduled == []


def test_a_push_service_that_never_answers_times_out_and_is_retried(app, factories, service):
    app.config["PUSH_TIMEOUT"] = 0.3
    member = factories.user()
    device(member, service, "slow")
    service.delay = 1.0
    started = time.monotonic()
    notify(member, "welcome", {"nickname": "x"})
    db.session.commit()
    assert time.monotonic() - started < 1.0, "the send gave up at its timeout"
    [delivery] = deliveries()
    assert delivery.status == "queued" and delivery.http_status is None
    assert "Timeout" in delivery.last_error
    assert [name for _, name, _ in app.extensions["jobs"].scheduled] == ["services.push.retry_delivery"]


def test_an_endpoint_is_checked_again_at_send_time(app, factories, service):
    member = factories.user()
    device(member, service, "a")
    phone = Subscriber()
    subscribe(member, "https://localhost:9/push/b", phone.p256dh, phone.auth, ANDROID_CHROME, allow_private=True)
    db.session.commit()
    app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"] = False  # as in production: no http, no loopback
    notify(member, "welcome", {"nickname": "x"})
    db.session.commit()
    http, loopback = deliveries()
    assert http.status == "failed" and http.last_error == "endpoint refused: Push addresses must use https."
    assert loopback.status == "failed"
    assert loopback.last_error == "endpoint refused: This push address points into a private network and is refused."
    assert service.received == []


def test_a_reply_goes_out_by_its_category(app, factories, service, communities, login_as):
    from models.nonces import new_nonce
    from models.stories import StoryInput, save_story

    author = factories.user(login="13800000001", verified=True)
    commenter = factories.user(login="13800000002", verified=True, nickname="老李")
    _, phone = device(author, service, "replies-on")
    device(author, service, "replies-off", categories=["events"])
    story = save_story(author, StoryInput(communities["ev"], "换电池记", "这是一篇关于换电池的故事，写得很长。", []), publish=True)
    db.session.commit()
    response = login_as(commenter).post(f"/stories/{story.id}/comments",
                                        data={"body": "说得好，学到了。", "nonce": new_nonce()})
    assert response.status_code in (200, 302, 303)
    [message] = service.to("replies-on")
    payload = phone.decrypt(message)
    assert payload["title"] == "车友圈 · 评论与回复"
    assert payload["body"] == "老李 评论了你的故事“换电池记”。"
    assert payload["url"].startswith(f"/stories/{story.id}")
    assert service.to("replies-off") == []
    assert message.headers["urgency"] == "normal"


def test_sms_is_the_fallback_for_flagged_kinds_without_a_push_device(app, factories, service):
    from models.sms_rules import next_allowed_send

    with_phone = factories.user(login="13900000001", verified=True)
    with_push = factories.user(login="13900000002", verified=True)
    device(with_push, service, "p")
    notify(with_phone, "event_cancelled", {"title": "周末露营", "message": "下雨。"})
    notify(with_push, "event_cancelled", {"title": "周末露营", "message": "下雨。"})
    notify(with_phone, "welcome", {"nickname": "x"})  # not a kind SMS carries
    db.session.commit()
    [sms] = deliveries(channel="sms")
    assert db.session.get(Notification, sms.notification_id).user_id == with_phone.id
    assert [d.notification_id for d in deliveries(channel="push")] != []
    assert len(service.to("p")) == 1
    # The SMS job runs now or, in quiet hours, at 08:00 Shanghai (models/sms_rules.py).
    if next_allowed_send(utcnow()) > utcnow():
        assert [name for _, name, _ in app.extensions["jobs"].scheduled] == ["services.tasks.send_sms_notice"]
    else:
        assert deliveries(channel="sms")[0].status == "sent"
        assert app.extensions["sms"].notices[-1][:2] == ("13900000001", "event_cancelled")


def test_a_batch_is_sent_in_parallel(app, factories, service):
    app.config["PUSH_THREADS"] = 8
    service.delay = 0.3
    member = factories.user()
    for n in range(8):
        device(member, service, f"d{n}")
    started = time.monotonic()
    notify(member, "welcome", {"nickname": "x"})
    db.session.commit()
    elapsed = time.monotonic() - started
    assert len(service.received) == 8 and [d.status for d in deliveries()] == ["sent"] * 8
    assert elapsed < 8 * 0.3 * 0.6, f"8 sends of 0.3 s took {elapsed:.2f} s: not in parallel"
