"""Verification codes, forgotten passwords and SMS login in a real phone browser, 360 and 412 px wide."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from models import User, db
from tests.browser.test_shell import log_in

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Hangzhou2026pw"


@pytest.fixture(params=[360, 412], ids=["360px", "412px"])
def width(request, page):
    page.set_viewport_size({"width": request.param, "height": 780})
    return request.param


def _last_code(app, phone: str, purpose: str) -> str:
    return [c for p, c, pu in app.extensions["sms"].sent if p == phone and pu == purpose][-1]


def _fits(page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "nothing sticks out sideways"


def _unexpected(console_errors, *expected) -> list[str]:
    """Console errors other than the refusals the test provokes (Chromium logs 422 answers)."""
    return [e for e in console_errors if not any(x in e for x in ("status of 422", *expected))]


def _user(**where) -> User | None:
    db.session.rollback()
    (column, value), = where.items()
    return db.session.scalar(select(User).where(getattr(User, column) == value))


def test_the_resend_button_counts_down_60_seconds_then_the_server_still_decides(app, page, width, factories,
                                                                                console_errors):
    member = factories.user()
    page.clock.install()
    log_in(page, member.email)
    page.goto("/auth/phone")
    page.fill("input[name=phone]", "13812345678")
    page.click("#phone-verify button[type=submit]")

    resend = page.locator("form.resend button")
    expect(resend).to_be_disabled()
    assert re.fullmatch(r"(60|59) 秒后重新获取", resend.inner_text().strip())
    _fits(page, width)
    if width == 360:
        page.screenshot(path="/tmp/cheyou-code-countdown-360.png", full_page=True, caret="initial")

    page.fill("input[name=code]", "000000")  # a wrong code keeps the code field and the countdown
    page.click("#phone-verify form:not(.resend) button[type=submit]")
    page.locator("#phone-verify .error").wait_for()
    assert "验证码错误" in page.locator("#phone-verify").inner_text()
    assert page.locator("input[name=code]").is_visible()
    expect(page.locator("form.resend button")).to_be_disabled()

    page.clock.run_for(61_000)
    resend = page.locator("form.resend button")
    assert resend.is_enabled() and resend.inner_text().strip() == "重新发送验证码"
    assert len(app.extensions["sms"].sent) == 1

    # The page's clock ran ahead; the server's did not: it refuses, and the code field stays.
    resend.click()
    page.locator("form.resend .error").wait_for()
    assert "秒后再重新获取验证码" in page.locator("form.resend .error").inner_text()
    assert page.locator("input[name=code]").is_visible()
    expect(page.locator("form.resend button")).to_be_disabled()  # the countdown goes on from the server's wait
    assert len(app.extensions["sms"].sent) == 1

    page.fill("input[name=code]", _last_code(app, "13812345678", "verify"))
    page.click("#phone-verify form:not(.resend) button[type=submit]")
    page.locator("#phone-verify .status.ok").wait_for()
    assert _user(id=member.id).phone_verified
    assert _unexpected(console_errors) == []


def test_reset_by_sms_end_to_end_signs_out_the_other_phone(app, browser, live_server, page, width, factories,
                                                           console_errors):
    from tests.browser.conftest import PHONE

    factories.user(login="13900001111", nickname="老张")
    other = browser.new_context(base_url=live_server, **PHONE)
    try:
        other_page = other.new_page()
        log_in(other_page, "13900001111")
        other_page.goto("/me")
        assert "/me" in other_page.url

        page.goto("/auth/login")
        page.click("text=忘记密码？")
        page.wait_for_url("**/auth/forgot")
        page.fill("input[name=login]", "13900001111")
        page.click("#forgot button[type=submit]")
        page.locator("input[name=code]").wait_for()
        assert "139****1111" in page.locator("#forgot").inner_text()
        expect(page.locator("form.resend button")).to_be_disabled()
        _fits(page, width)
        if width == 360:
            page.screenshot(path="/tmp/cheyou-forgot-sms-360.png", full_page=True, caret="initial")

        page.fill("input[name=code]", _last_code(app, "13900001111", "reset"))
        page.fill("input[name=password]", NEW_PASSWORD)
        page.click("#forgot form:not(.resend) button[type=submit]")
        page.wait_for_url(live_server + "/")
        assert "密码已修改" in page.locator(".flash").first.inner_text()
        page.goto("/me")
        assert "/me" in page.url, "this phone is logged in"

        other_page.goto("/me")
        assert "/auth/login" in other_page.url, "the other phone was signed out"
    finally:
        other.close()
    assert _user(phone="13900001111").check_password(NEW_PASSWORD)
    assert _unexpected(console_errors) == []


def test_reset_by_email_end_to_end(app, page, width, factories, console_errors):
    from services.mail import get_backend

    mailbox = get_backend(app).sent
    mailbox.clear()
    factories.user(login="driver@example.com")
    page.goto("/auth/forgot")
    page.fill("input[name=login]", "driver@example.com")
    page.click("#forgot button[type=submit]")
    page.locator("#forgot .status.ok").wait_for()
    assert "1 小时内有效" in page.locator("#forgot").inner_text()

    (message,) = mailbox
    link = re.search(r"http://\S+/auth/reset/\S+", message.get_content()).group(0)
    page.goto(link)
    page.fill("input[name=password]", NEW_PASSWORD)
    _fits(page, width)
    page.click("main form button[type=submit]")
    page.wait_for_url(lambda url: "/auth/reset" not in url)
    assert "密码已修改" in page.locator(".flash").first.inner_text()
    mailbox.clear()
    assert _user(email="driver@example.com").check_password(NEW_PASSWORD)

    page.goto(link)
    assert "已过期或已被使用" in page.locator("main").inner_text(), "the link works once"
    assert _unexpected(console_errors, "status of 410") == []


def test_sms_login_creates_an_account_only_after_accepting_the_privacy_policy(app, page, width, factories,
                                                                              console_errors):
    factories.communities()
    page.goto("/auth/login")
    page.click(".auth-tabs >> text=验证码登录")
    page.wait_for_url("**/auth/login/sms")
    _fits(page, width)
    if width == 360:
        page.screenshot(path="/tmp/cheyou-login-sms-360.png", full_page=True, caret="initial")
    page.fill("input[name=phone]", "13600006666")
    page.click("#sms-login button[type=submit]")
    page.locator("input[name=code]").wait_for()
    assert page.locator("input[name=consent]").is_visible()
    expect(page.locator("form.resend button")).to_be_disabled()

    page.fill("input[name=code]", _last_code(app, "13600006666", "login"))
    page.click("#sms-login form:not(.resend) button[type=submit]")
    page.locator("#sms-login .field.checkbox .error").wait_for()
    assert "注册前需同意隐私政策" in page.locator("#sms-login").inner_text()
    assert page.locator("input[name=code]").input_value() == _last_code(app, "13600006666", "login")
    assert _user(phone="13600006666") is None
    if width == 360:
        page.screenshot(path="/tmp/cheyou-login-sms-consent-360.png", full_page=True, caret="initial")

    page.check("input[name=consent]")
    page.click("#sms-login form:not(.resend) button[type=submit]")
    page.wait_for_url("**/communities")
    assert "欢迎来到车友圈" in page.locator(".flash").first.inner_text()
    user = _user(phone="13600006666")
    assert user is not None and user.phone_verified and user.consent_at is not None
    assert _unexpected(console_errors) == []


def test_sms_login_into_an_existing_account_keeps_the_code_field_after_a_wrong_code(app, page, width, factories,
                                                                                   console_errors):
    factories.user(login="13500005555", nickname="小陈")
    page.goto("/auth/login/sms?next=/me/points")
    page.fill("input[name=phone]", "13500005555")
    page.click("#sms-login button[type=submit]")
    page.locator("input[name=code]").wait_for()
    assert page.locator("input[name=consent]").count() == 0
    page.fill("input[name=code]", "111111")
    page.click("#sms-login form:not(.resend) button[type=submit]")
    page.locator("#sms-login .field .error").wait_for()
    assert page.locator("input[name=code]").is_visible()
    expect(page.locator("form.resend button")).to_be_disabled()
    page.fill("input[name=code]", _last_code(app, "13500005555", "login"))
    page.click("#sms-login form:not(.resend) button[type=submit]")
    page.wait_for_url(lambda url: "/auth/" not in url and url.endswith("/me/points"))
    assert _user(phone="13500005555").phone_verified
    assert _unexpected(console_errors) == []


def test_the_login_page_in_chinese_at_phone_width(page, width, console_errors):
    page.goto("/auth/login")
    assert page.locator(".auth-tabs a[aria-current=page]").inner_text() == "密码登录"
    assert page.locator("text=忘记密码？").is_visible()
    _fits(page, width)
    if width == 360:
        page.screenshot(path="/tmp/cheyou-login-360.png", full_page=True, caret="initial")
    assert _unexpected(console_errors) == []
