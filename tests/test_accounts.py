"""Sign up, log in and out, passwords, sessions and mobile verification."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from models import Notification, SmsCode, User, db
from models.types import utcnow
from tests.factories import PASSWORD


def signup(client, **overrides):
    data = {"login": "new@example.com", "nickname": "新车友", "password": "Abcdef123", "consent": "y"}
    data.update(overrides)
    return client.post("/auth/signup", data=data)


def test_signup_with_email_records_consent_and_logs_in(app, client, communities):
    response = signup(client, marketing="y")
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "new@example.com"))
    assert user.nickname == "新车友"
    assert user.consent_version == app.config["PRIVACY_POLICY_VERSION"] and user.consent_at is not None
    assert user.marketing_opt_in is True
    assert user.password_hash != "Abcdef123" and user.check_password("Abcdef123")
    assert "新车友" in client.get("/me").get_data(as_text=True)
    assert Notification.unread_count(user) == 1  # the welcome message


def test_signup_with_mobile_number_sends_to_verification(client, communities):
    response = signup(client, login="+86 138-0013-8000")
    assert response.headers["Location"].endswith("/auth/phone")
    user = db.session.scalar(select(User).where(User.phone == "13800138000"))
    assert user is not None and not user.phone_verified


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"password": "abc"}, "8"),
        ({"password": "12345678"}, ""),
        ({"password": "abcdefghij"}, ""),
        ({"login": "12345"}, ""),
        ({"login": "not-an-email"}, ""),
        ({"consent": ""}, ""),
        ({"nickname": "x"}, ""),
    ],
)
def test_bad_signup_keeps_what_was_typed_and_says_why(client, overrides, message):
    response = signup(client, **overrides)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'class="error"' in body
    assert message in body
    assert db.session.scalar(select(User)) is None
    # What the member typed is still in the form (never the password).
    if "nickname" not in overrides:
        assert 'value="新车友"' in body
    assert "Abcdef123" not in body


def test_duplicate_email_or_number_is_refused_with_a_clear_message(client, factories):
    factories.user(login="taken@example.com")
    factories.user(login="13900000000")
    body = signup(client, login="TAKEN@example.com").get_data(as_text=True)
    assert "已注册" in body
    body = signup(client, login="13900000000").get_data(as_text=True)
    assert "已注册" in body
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 2


@pytest.mark.parametrize("login", ["member@example.com", "13700000000"])
def test_login_with_email_or_mobile(client, factories, login):
    factories.user(login=login, nickname="老司机")
    response = client.post("/auth/login", data={"login": login, "password": PASSWORD})
    assert response.status_code == 302
    assert "老司机" in client.get("/me").get_data(as_text=True)


def test_wrong_password_is_refused_and_login_kept(client, factories):
    factories.user(login="member@example.com")
    response = client.post("/auth/login", data={"login": "member@example.com", "password": "wrong-pass-1"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "登录信息或密码错误" in body or "密码" in body
    assert 'value="member@example.com"' in body
    assert client.get("/me").status_code == 302


def test_login_redirects_only_to_local_next(client, factories):
    factories.user(login="member@example.com")
    ok = client.post("/auth/login?next=/me/notifications", data={"login": "member@example.com", "password": PASSWORD})
    assert ok.headers["Location"] == "/me/notifications"
    client.post("/auth/logout")
    evil = client.post("/auth/login?next=//evil.example/x", data={"login": "member@example.com", "password": PASSWORD})
    assert evil.headers["Location"] == "/"


def test_logout_is_post_only_and_clears_site_data(login_as, factories):
    client = login_as(factories.user())
    assert client.get("/auth/logout").status_code == 405
    response = client.post("/auth/logout")
    assert response.status_code == 302
    assert '"cache"' in response.headers["Clear-Site-Data"] and '"storage"' in response.headers["Clear-Site-Data"]
    assert client.get("/me").status_code == 302


def test_remember_me_sets_a_lasting_cookie(client, factories):
    factories.user(login="member@example.com")
    response = client.post(
        "/auth/login", data={"login": "member@example.com", "password": PASSWORD, "remember": "y"}
    )
    assert "remember_token=" in " ".join(response.headers.getlist("Set-Cookie"))


def test_changing_password_ends_every_other_session(app, factories):
    user = factories.user(login="member@example.com")
    phone_a, phone_b = app.test_client(), app.test_client()
    for c in (phone_a, phone_b):
        c.post("/auth/login", data={"login": "member@example.com", "password": PASSWORD})
        assert c.get("/me").status_code == 200
    response = phone_a.post("/auth/password", data={"current": PASSWORD, "password": "N3w-password"})
    assert response.status_code == 302
    assert phone_a.get("/me").status_code == 200, "the device that changed it stays signed in"
    assert phone_b.get("/me").status_code == 302, "every other session ends"
    db.session.expire_all()
    assert db.session.get(User, user.id).check_password("N3w-password")


def test_password_change_needs_the_current_password(login_as, factories):
    client = login_as(factories.user())
    response = client.post("/auth/password", data={"current": "not-it-123", "password": "N3w-password"})
    assert response.status_code == 422
    assert "当前密码" in response.get_data(as_text=True)


def test_real_login_form_with_csrf(client, factories, csrf_on):
    factories.user(login="member@example.com", nickname="表单车友")
    page = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    refused = client.post("/auth/login", data={"login": "member@example.com", "password": PASSWORD})
    assert refused.status_code == 400
    assert "member@example.com" in refused.get_data(as_text=True), "the form keeps what was typed"
    response = client.post(
        "/auth/login", data={"login": "member@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    assert "表单车友" in client.get("/me").get_data(as_text=True)


def test_state_change_without_csrf_token_is_refused(login_as, factories, communities, csrf_on):
    client = login_as(factories.user())
    response = client.post("/c/ev/join")
    assert response.status_code == 400
    assert "页面已过期" in response.get_data(as_text=True)


def test_htmx_request_may_send_csrf_in_header(app, login_as, factories, communities, csrf_on):
    client = login_as(factories.user())
    page = client.get("/c/ev").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    response = client.post("/c/ev/join", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status_code == 200


# -- mobile verification ------------------------------------------------------

def _send_code(client, phone="13812345678"):
    return client.post("/auth/phone/send", data={"phone": phone}, headers={"HX-Request": "true"})


def test_phone_verification_by_sms_code(app, login_as, factories):
    user = factories.user()
    client = login_as(user)
    response = _send_code(client)
    assert response.status_code == 200
    assert "138****5678" in response.get_data(as_text=True)
    phone, code, purpose = app.extensions["sms"].sent[-1]
    assert phone == "13812345678" and len(code) == 6
    assert db.session.scalar(select(SmsCode.code_hash)) != code, "codes are stored hashed"
    response = client.post("/auth/phone/verify", data={"phone": phone, "code": code}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    db.session.expire_all()
    user = db.session.get(User, user.id)
    assert user.phone == "13812345678" and user.phone_verified
    assert "已验证" in client.get("/me").get_data(as_text=True)


def test_wrong_code_then_too_many_attempts(app, login_as, factories):
    client = login_as(factories.user())
    _send_code(client)
    for _ in range(SmsCode.MAX_ATTEMPTS):
        response = client.post("/auth/phone/verify", data={"phone": "13812345678", "code": "000000"})
        assert response.status_code == 422
    _, code, _ = app.extensions["sms"].sent[-1]
    response = client.post("/auth/phone/verify", data={"phone": "13812345678", "code": code})
    assert response.status_code == 422, "after too many attempts even the right code is refused"
    assert "重新获取" in response.get_data(as_text=True) or "新的验证码" in response.get_data(as_text=True)


def test_expired_code_is_refused(app, login_as, factories):
    client = login_as(factories.user())
    _send_code(client)
    _, code, _ = app.extensions["sms"].sent[-1]
    row = db.session.scalar(select(SmsCode))
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    response = client.post("/auth/phone/verify", data={"phone": "13812345678", "code": code})
    assert response.status_code == 422
    assert "过期" in response.get_data(as_text=True)


def test_codes_cannot_be_resent_within_a_minute(app, login_as, factories):
    client = login_as(factories.user())
    assert _send_code(client).status_code == 200
    response = _send_code(client)
    assert response.status_code == 422
    assert "秒" in response.get_data(as_text=True)
    assert len(app.extensions["sms"].sent) == 1


def test_a_number_of_another_account_cannot_be_claimed(app, login_as, factories):
    factories.user(login="13812345678")
    client = login_as(factories.user())
    response = _send_code(client)
    assert response.status_code == 422
    assert list(app.extensions["sms"].sent) == []


def test_login_is_rate_limited_with_a_clear_message(client, factories, limiter_on):
    factories.user(login="member@example.com")
    statuses = [
        client.post("/auth/login", data={"login": "member@example.com", "password": "wrong-pass-1"}).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [422] * 10
    assert statuses[10] == 429
    response = client.post("/auth/login", data={"login": "member@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert "操作太频繁" in response.get_data(as_text=True)


def test_expired_csrf_token_keeps_what_was_typed(client, csrf_on, monkeypatch, communities):
    import time

    from itsdangerous import TimestampSigner

    page = client.get("/auth/signup").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    later = int(time.time()) + 9 * 3600  # the page sat open all day
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    response = signup(client, csrf_token=token, login="13812345678", nickname="午后车友")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "页面停留时间过长" in body
    assert 'value="13812345678"' in body and 'value="午后车友"' in body
    assert db.session.scalar(select(User)) is None


def test_a_page_still_loading_when_the_login_answers_does_not_log_the_member_out(app, client, factories, csrf_on):
    """A phone logging in on its first visit has other requests in flight (the service worker
    fetching its shell, a slow page): each was sent with the visitor's cookie, and one answering
    after the login with a cookie of its own would put the visitor's session back."""
    factories.user(login="member@example.com", nickname="表单车友")
    page = client.get("/auth/login").get_data(as_text=True)
    visitor_cookie = client.get_cookie("session").value
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)

    in_flight = app.test_client()  # the same browser, a request sent before the login
    in_flight.set_cookie("session", visitor_cookie)
    client.post("/auth/login", data={"login": "member@example.com", "password": PASSWORD, "csrf_token": token})
    for path in ("/offline", "/", "/auth/login"):
        late = in_flight.get(path)
        assert late.status_code == 200
        assert not late.headers.getlist("Set-Cookie"), f"{path} would overwrite the member's login cookie"
    assert "表单车友" in client.get("/me").get_data(as_text=True)
