"""An organizer on a phone: creates an event through the real form (CSRF on, datetime-local
inputs in Shanghai time), publishes it, then cancels it with a message."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import select

from models import db
from models.events import Event, SignupInput, signup
from models.types import SHANGHAI, utcnow
from tests.browser.test_shell import _fresh, log_in

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("CHEYOU_SCREENSHOTS")  # a folder: keep screenshots of each step to look at


def shot(page, name):
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/event-manage-{name}.png", full_page=True)


def test_organizer_creates_publishes_and_cancels_an_event(page, factories, console_errors):
    communities = factories.communities()
    factories.user(login="13900002222", nickname="组织者老王", role="organizer", community=communities["ev"])
    start = (utcnow() + timedelta(days=5)).astimezone(SHANGHAI).replace(hour=14, minute=0, second=0, microsecond=0)

    log_in(page, "13900002222")
    page.goto("/events/manage")
    shot(page, "empty")
    page.click("#event-new")
    page.wait_for_url("**/events/new")
    page.fill("#title", "周末充电站交流会")
    page.fill("#starts_at", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#ends_at", (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#place", "滨江充电站")
    page.fill("#address", "上海市浦东新区滨江大道 1 号")
    page.fill("#capacity", "0")
    page.click("main form button[type=submit]")
    page.locator("#capacity-error").wait_for()
    assert page.locator(".em-error-summary a[href='#capacity']").count() == 1
    assert page.input_value("#title") == "周末充电站交流会", "what was typed is kept"
    shot(page, "form-error")
    page.fill("#capacity", "12")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/manage")

    _fresh()
    event = db.session.scalar(select(Event))
    assert event.status == "draft" and event.capacity == 12 and event.starts_at == start
    assert page.locator("#event-dashboard[data-status=draft]").count() == 1
    page.click(f"form[action='/events/{event.id}/publish'] button")
    page.locator("#event-dashboard[data-status=published]").wait_for()
    shot(page, "dashboard")

    _fresh()  # a stale read snapshot cannot write on SQLite
    member = factories.user(login="13812345678", nickname="报名的车友")
    signup(db.session.get(Event, event.id), member, SignupInput())
    db.session.commit()
    page.click("a[href$='/roster']")
    page.locator(".em-roster-row", has_text="报名的车友").wait_for()
    assert "138****5678" in page.inner_text("main") and "13812345678" not in page.content()
    shot(page, "roster")
    page.go_back()

    page.click(".em-cancel summary")
    page.fill("#cancel-message", "场地临时维修，活动取消，抱歉！")
    shot(page, "cancel")
    page.click(f"form[action='/events/{event.id}/cancel-event'] button")
    page.locator("#event-dashboard[data-status=cancelled]").wait_for()
    page.goto("/events/manage")
    assert page.locator(f"#event-{event.id} .em-status-pill").count() == 1
    shot(page, "list")
    _fresh()
    assert db.session.get(Event, event.id).cancel_message == "场地临时维修，活动取消，抱歉！"
    # The refused form is answered with a 422, which Chromium logs; anything else is an error.
    assert [e for e in console_errors if "status of 422" not in e] == []
