"""A form whose page sat open too long, in a real phone browser: what htmx or the story editor
sent comes back in place with the notice and a fresh token, and sending again works."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from models import Story, db
from tests.browser.test_shell import _fresh, log_in

pytestmark = pytest.mark.browser

NOTICE = "页面停留时间过长"


def _expire(page, form: str) -> None:
    """What a token past its time limit does: the server refuses it (here: it no longer matches)."""
    page.eval_on_selector(f"{form} input[name=csrf_token]", "input => { input.value = 'stale'; }")


def _texted(app) -> list[str]:
    """The numbers texted so far (the SMS backend starts with the first text)."""
    return [phone for phone, _code, _purpose in getattr(app.extensions.get("sms"), "sent", [])]


def _unexpected(console_errors) -> list[str]:
    return [e for e in console_errors if "status of 400" not in e]  # Chromium logs the refusal itself


def test_the_sms_login_form_comes_back_in_place_and_then_sends_the_code(app, page, factories, console_errors):
    factories.user(login="13500005555", nickname="小陈")
    page.goto("/auth/login/sms")
    page.fill("input[name=phone]", "13500005555")
    _expire(page, "#sms-login form")
    page.click("#sms-login button[type=submit]")
    page.locator("#sms-login .form-error").wait_for()
    assert NOTICE in page.locator("#sms-login").inner_text()
    assert page.locator("input[name=phone]").input_value() == "13500005555", "what was typed is kept"
    assert page.locator("#toast").is_hidden(), "no error toast: the form itself says it"
    assert _texted(app) == []

    page.click("#sms-login button[type=submit]")  # the fresh token came with the form
    page.locator("input[name=code]").wait_for()
    assert _texted(app) == ["13500005555"]
    assert _unexpected(console_errors) == []


def test_the_story_editor_comes_back_with_the_words_and_publishes_on_the_second_tap(page, factories, console_errors):
    factories.communities()
    factories.user(login="13911112222", nickname="电车老王", verified=True)
    log_in(page, "13911112222")
    page.goto("/stories/new")
    page.fill("input[name=title]", "冬天续航实测")
    page.fill("textarea[name=body]", "提车三个月，电池健康度还是 98%，冬天续航掉了两成。")
    _expire(page, "#story-editor form")
    page.get_by_role("button", name="发布").click()

    page.locator("#story-editor .form-error").wait_for()
    assert NOTICE in page.locator("#story-editor").inner_text()
    assert page.locator("input[name=title]").input_value() == "冬天续航实测"
    _fresh()
    assert db.session.scalars(select(Story)).all() == []

    page.get_by_role("button", name="发布").click()
    page.wait_for_url(re.compile(r"/stories/\d+$"))
    _fresh()
    assert len(db.session.scalars(select(Story)).all()) == 1
    assert _unexpected(console_errors) == []
