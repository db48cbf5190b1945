"""Web Push in Chromium: a message delivered through the DevTools protocol (headless Chromium has
no push service of its own) is shown by the service worker with its title, body, tag and link;
the click path navigates an open window; the opt-in button and the per-device switches."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from models import db, notify
from models.push import PushSubscription, subscribe
from tests.browser.test_shell import log_in, wait_for_service_worker
from tests.push_service import Subscriber

pytestmark = pytest.mark.browser

NOTIFICATIONS = """navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((ns) =>
  ns.map((n) => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url})))"""


def registration_id(context, page, origin: str) -> tuple[object, str]:
    """A CDP session with ServiceWorker domain on, and the id of the site's registration."""
    cdp = context.new_cdp_session(page)
    seen = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: seen.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ours = [r for r in seen if r["scopeURL"].startswith(origin) and not r["isDeleted"]]
        if ours:
            return cdp, ours[-1]["registrationId"]
        page.wait_for_timeout(50)
    raise AssertionError(f"no service worker registration seen for {origin}: {seen}")


def shown(page, count: int = 1) -> list[dict]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        notes = page.evaluate(NOTIFICATIONS)
        if len(notes) >= count:
            return notes
        page.wait_for_timeout(50)
    return page.evaluate(NOTIFICATIONS)


def test_a_push_is_shown_with_its_title_body_tag_and_link_and_a_click_opens_the_link(
        app, page, context, live_server, factories, console_errors):
    from services.push import payload_for

    member = factories.user(nickname="小周")
    note = notify(member, "event_reminder", {"time": "09:00", "title": "周末洗车聚会", "place": "世纪公园"},
                  link="/events")
    db.session.commit()
    with app.test_request_context("/"):
        payload = payload_for(note, "zh_CN")  # what services/push.py encrypts for this member

    context.grant_permissions(["notifications"], origin=live_server)
    log_in(page, member.email)
    page.goto("/me/notifications")
    wait_for_service_worker(page)
    cdp, reg_id = registration_id(context, page, live_server)

    cdp.send("ServiceWorker.deliverPushMessage", {"origin": live_server, "registrationId": reg_id,
                                                   "data": json.dumps(payload, ensure_ascii=False)})
    [notification] = shown(page)
    assert notification == {
        "title": "车友圈 · 活动",
        "body": "明天 09:00：“周末洗车聚会”在世纪公园举行，门票在“我的门票”里。",
        "tag": f"cheyou-n{note.id}",
        "url": f"{live_server}/events",
    }

    # The same message again (at-least-once delivery) replaces the first: one on the phone.
    cdp.send("ServiceWorker.deliverPushMessage", {"origin": live_server, "registrationId": reg_id,
                                                   "data": json.dumps(payload, ensure_ascii=False)})
    page.wait_for_timeout(300)
    assert len(page.evaluate(NOTIFICATIONS)) == 1

    # A link to another site in a payload is never followed: the inbox instead.
    cdp.send("ServiceWorker.deliverPushMessage", {"origin": live_server, "registrationId": reg_id,
                                                   "data": json.dumps({**payload, "tag": "other", "url": "https://evil.example/"})})
    urls = {n["tag"]: n["url"] for n in shown(page, 2)}
    assert urls["other"] == f"{live_server}/me/notifications"

    # The click path: the open window (controlled by the worker) is navigated to the link.
    # (Headless Chromium refuses openWindow from a dispatched click; a new window is a manual check.)
    [worker] = [w for w in context.service_workers if w.url.endswith("/sw.js")]
    worker.evaluate("""self.registration.getNotifications({tag: %s})
        .then(([n]) => openFromNotification(n.data.url)).then(() => true)""" % json.dumps(payload["tag"]))
    page.wait_for_url(f"{live_server}/events")
    assert not console_errors


def test_opting_in_asks_only_on_the_button_and_explains_a_failure(page, context, live_server, factories, console_errors):
    member = factories.user()
    context.add_init_script("""window.__asked = 0;
        const ask = Notification.requestPermission.bind(Notification);
        Notification.requestPermission = (...args) => { window.__asked += 1; return ask(...args); };""")
    log_in(page, member.email)
    page.goto("/me/notifications")
    wait_for_service_worker(page)
    enable = page.get_by_role("button", name="在此设备开启推送")
    enable.wait_for()
    assert page.locator("[data-push-disable]").is_hidden()
    assert page.evaluate("window.__asked") == 0, "never a prompt on page load"

    context.grant_permissions(["notifications"], origin=live_server)
    enable.click()
    assert page.evaluate("window.__asked") == 1
    status = page.locator("[data-push-status]")
    page.wait_for_function("(el) => el.textContent && el.textContent !== '请稍候…'", arg=status.element_handle())
    text = status.inner_text()
    db.session.rollback()
    stored = db.session.scalars(select(PushSubscription).where(PushSubscription.user_id == member.id)).all()
    if stored:  # a Chromium with a push service: the device is listed, with this device marked
        assert text == "此设备已开启推送。"
        assert page.locator("[data-this-device]").is_visible()
        assert page.locator("[data-push-disable]").is_visible()
    else:  # headless Chromium: no push service, or its address is refused; said plainly
        assert text in ("此浏览器无法开启推送。请稍后再试，或在站内消息中查看通知。", "无法连接此浏览器的推送服务。")
        assert page.locator("[data-push-enable]").is_visible()
    assert not [e for e in console_errors if "Content Security Policy" in e]


def test_switches_change_a_devices_categories_in_place(app, page, factories, console_errors):
    member = factories.user()
    phone = Subscriber()
    row = subscribe(member, "http://127.0.0.1:9/push/browser", phone.p256dh, phone.auth,
                    "Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile Safari/537.36", allow_private=True)
    db.session.commit()
    row_id = row.id
    log_in(page, member.email)
    page.goto("/me/notifications")
    device = page.locator(f"#push-device-{row_id}")
    assert "Android · Chrome" in device.inner_text()
    page.evaluate("window.__marker = 1")
    with page.expect_response(lambda r: r.url.endswith("/categories")):
        device.get_by_label("资讯与优惠").uncheck()
    page.locator(f"#push-device-{row_id} input[value=campaigns]:not(:checked)").wait_for()
    assert page.evaluate("window.__marker") == 1, "switched with htmx, no page load"
    db.session.rollback()
    assert db.session.get(PushSubscription, row_id).categories == ["events", "replies", "loyalty", "account"]

    with page.expect_response(lambda r: r.url.endswith("/delete")):
        page.locator(f"#push-device-{row_id}").get_by_role("button", name="移除此设备").click()
    page.locator(f"#push-device-{row_id}").wait_for(state="detached")
    db.session.rollback()
    assert db.session.get(PushSubscription, row_id) is None
    assert not console_errors
