"""Verification-code steps, forgotten passwords (SMS code or e-mailed link) and SMS login (issue #10)."""
from __future__ import annotations

import html
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from models import Notification, SmsCode, User, db
from models.types import utcnow
from tests.factories import PASSWORD

NEW_PASSWORD = "Chengdu2026new"
HX = {"HX-Request": "true"}


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _codes(app, purpose=None):
    return [(p, c) for p, c, pu in app.extensions["sms"].sent if purpose is None or pu == purpose]


def _nonce(response) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def _has_code_field(response) -> bool:
    return 'name="code"' in response.get_data(as_text=True)


def _age_codes(seconds=120):
    """Pretend every code was sent SECONDS ago (past the 60-second resend wait)."""
    db.session.execute(update(SmsCode).values(created_at=utcnow() - timedelta(seconds=seconds)))
    db.session.commit()


def _logged_in(client) -> bool:
    return client.get("/me").status_code == 200


def _user(phone=None, email=None) -> User:
    db.session.rollback()
    column, value = (User.phone, phone) if phone else (User.email, email)
    return db.session.scalar(select(User).where(column == value))


def _kinds(user) -> list[str]:
    return list(db.session.scalars(select(Notification.kind).where(Notification.user_id == user.id)))


# -- the code step: countdown data, resend refused, code field kept ---------------------------

def test_after_sending_the_resend_button_waits_60_seconds_and_a_refused_resend_keeps_the_code_field(app, login_as, factories):
    client = login_as(factories.user())
    first = client.post("/auth/phone/send", data={"phone": "13812345678"}, headers=HX)
    assert first.status_code == 200 and _has_code_field(first)
    assert 'data-resend-in="60"' in first.get_data(as_text=True), "the countdown starts from the server's 60 s"
    assert "秒后重新获取" in _text(first), "the countdown label is in Chinese"

    again = client.post("/auth/phone/send", data={"phone": "13812345678"}, headers=HX)
    assert again.status_code == 422
    body = _text(again)
    assert "秒后再重新获取验证码" in body, "the server refuses a resend within 60 s"
    assert _has_code_field(again), "a refused resend must not swap the code field away"
    wait = int(re.search(r'data-resend-in="(\d+)"', body).group(1))
    assert 50 <= wait <= 60, "the countdown goes on from what is left"
    assert len(_codes(app)) == 1

    code = _codes(app)[0][1]
    ok = client.post("/auth/phone/verify", data={"phone": "13812345678", "code": code}, headers=HX)
    assert ok.status_code == 200 and "已验证" in _text(ok), "the code sent first still works"


def test_a_wrong_code_keeps_the_code_field_with_the_countdown_left(app, login_as, factories):
    client = login_as(factories.user())
    client.post("/auth/phone/send", data={"phone": "13812345678"}, headers=HX)
    wrong = client.post("/auth/phone/verify", data={"phone": "13812345678", "code": "000000"}, headers=HX)
    assert wrong.status_code == 422 and _has_code_field(wrong)
    assert "验证码错误" in _text(wrong)
    assert re.search(r'data-resend-in="(5\d|60)"', wrong.get_data(as_text=True))


def test_a_refused_send_without_a_live_code_shows_the_number_form(app, login_as, factories, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_DAILY_BUDGET", 0)
    client = login_as(factories.user())
    response = client.post("/auth/phone/send", data={"phone": "13812345678"}, headers=HX)
    assert response.status_code == 422 and not _has_code_field(response)
    assert "今天的短信验证码已发完" in _text(response) and 'value="13812345678"' in _text(response)


# -- forgot password: by SMS -----------------------------------------------------------------

def test_the_login_page_links_to_forgot_password_and_sms_login(client):
    body = _text(client.get("/auth/login"))
    assert "/auth/forgot" in body and "忘记密码？" in body
    assert "/auth/login/sms" in body and "验证码登录" in body


def test_reset_by_sms_changes_the_password_ends_other_sessions_and_logs_in(app, factories):
    member = factories.user(login="13900001111", nickname="老张")
    other_phone = app.test_client()
    other_phone.post("/auth/login", data={"login": "13900001111", "password": PASSWORD})
    assert _logged_in(other_phone)

    client = app.test_client()
    sent = client.post("/auth/forgot", data={"login": "139 0000 1111"}, headers=HX)
    assert sent.status_code == 200 and _has_code_field(sent) and 'name="password"' in sent.get_data(as_text=True)
    assert "139****1111" in _text(sent)
    assert [(p, purpose) for p, _c, purpose in app.extensions["sms"].sent] == [("13900001111", "reset")]
    code = _codes(app, "reset")[0][1]
    nonce = _nonce(sent)

    wrong = client.post("/auth/forgot/reset", data={"phone": "13900001111", "code": "000000", "password": NEW_PASSWORD,
                                                    "nonce": nonce}, headers=HX)
    assert wrong.status_code == 422 and _has_code_field(wrong) and "验证码错误" in _text(wrong)
    weak = client.post("/auth/forgot/reset", data={"phone": "13900001111", "code": code, "password": "short",
                                                   "nonce": nonce}, headers=HX)
    assert weak.status_code == 422 and _has_code_field(weak) and "密码至少 8 位" in _text(weak)
    assert f'value="{code}"' in weak.get_data(as_text=True), "what was typed stays"

    done = client.post("/auth/forgot/reset", data={"phone": "13900001111", "code": code, "password": NEW_PASSWORD,
                                                   "nonce": nonce}, headers=HX)
    assert done.status_code == 200 and done.headers["HX-Redirect"] == "/"
    assert _logged_in(client), "the device that reset is logged in"
    assert not _logged_in(other_phone), "every other session ends"
    user = _user(phone="13900001111")
    assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)
    assert user.phone_verified, "the code proves the number"
    assert "password_changed" in _kinds(user), "the member is told in the inbox"

    again = app.test_client()  # the same form sent twice (a double tap) logs in, not "code used"
    twice = again.post("/auth/forgot/reset", data={"phone": "13900001111", "code": code, "password": NEW_PASSWORD,
                                                   "nonce": nonce}, headers=HX)
    assert twice.headers.get("HX-Redirect") == "/" and _logged_in(again)
    replay = app.test_client().post("/auth/forgot/reset", data={"phone": "13900001111", "code": code,
                                                                "password": "Other2026pass", "nonce": "x" * 24})
    assert replay.status_code == 422 and "验证码已过期" in _text(replay), "a used code does not work for another form"
    assert _user(phone="13900001111").check_password(NEW_PASSWORD)
    assert member.id == user.id


def test_reset_by_sms_to_a_number_without_an_account_sends_nothing(app, client):
    response = client.post("/auth/forgot", data={"login": "13700007777"}, headers=HX)
    assert response.status_code == 422
    assert "该手机号尚未注册" in _text(response) and 'value="13700007777"' in _text(response)
    assert list(app.extensions["sms"].sent) == [], "no text is paid for an unregistered number"
    assert db.session.scalar(select(SmsCode.id)) is None


def test_reset_codes_go_through_the_same_caps(app, factories, client, monkeypatch):
    factories.user(login="13900002222")
    factories.user(login="13900003333")
    assert client.post("/auth/forgot", data={"login": "13900002222"}, headers=HX).status_code == 200
    resend = client.post("/auth/forgot", data={"login": "13900002222"}, headers=HX)
    assert resend.status_code == 422 and "秒后再重新获取验证码" in _text(resend)
    assert _has_code_field(resend), "the code already sent still works: its field stays"
    monkeypatch.setitem(app.config, "SMS_DAILY_BUDGET", 1)
    refused = client.post("/auth/forgot", data={"login": "13900003333"}, headers=HX)
    assert refused.status_code == 422 and "今天的短信验证码已发完" in _text(refused) and not _has_code_field(refused)
    assert len(app.extensions["sms"].sent) == 1


# -- forgot password: by e-mail --------------------------------------------------------------

def _mailed(app):
    return app.extensions["mail"].sent if "mail" in app.extensions else []


def _link_in(message) -> str:
    return re.search(r"https?://\S+/auth/reset/\S+", message.get_content()).group(0)


@pytest.fixture
def mailbox(app):
    from services.mail import get_backend

    backend = get_backend(app)
    backend.sent.clear()
    yield backend.sent
    backend.sent.clear()


def test_forgot_by_email_answers_the_same_with_or_without_an_account(app, client, factories, mailbox):
    factories.user(login="known@example.com")
    known = client.post("/auth/forgot", data={"login": "Known@Example.com"}, headers=HX)
    unknown = client.post("/auth/forgot", data={"login": "nobody@example.com"}, headers=HX)
    assert known.status_code == unknown.status_code == 200
    assert _text(known).replace("known@example.com", "X") == _text(unknown).replace("nobody@example.com", "X")
    assert "1 小时内有效" in _text(known)
    assert [m["To"] for m in mailbox] == ["known@example.com"], "only an account's address gets mail"
    assert list(app.extensions["sms"].sent) == []


def test_the_emailed_link_sets_a_new_password_once_and_ends_other_sessions(app, client, factories, mailbox):
    member = factories.user(login="reset.me@example.com", nickname="小李")
    other_phone = app.test_client()
    other_phone.post("/auth/login", data={"login": "reset.me@example.com", "password": PASSWORD})
    client.post("/auth/forgot", data={"login": "reset.me@example.com"})
    (message,) = mailbox
    assert message["Subject"] == "重设你的车友圈密码"
    body = message.get_content()
    assert "小李" in body and "1 小时" in body
    link = _link_in(message)
    path = link.split("localhost", 1)[-1]
    assert path.startswith("/auth/reset/")

    page = client.get(path)
    assert page.status_code == 200 and 'name="password"' in page.get_data(as_text=True)
    weak = client.post(path, data={"password": "abcdefgh"})
    assert weak.status_code == 422 and "字母和数字" in _text(weak)
    done = client.post(path, data={"password": NEW_PASSWORD})
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert _logged_in(client) and not _logged_in(other_phone)
    user = _user(email="reset.me@example.com")
    assert user.check_password(NEW_PASSWORD) and "password_changed" in _kinds(user)

    used = app.test_client()
    assert used.get(path).status_code == 410
    second = used.post(path, data={"password": "Another2026pw"})
    assert second.status_code == 422 and "已过期或已被使用" in _text(second), "the link works once"
    assert _user(email="reset.me@example.com").check_password(NEW_PASSWORD)
    assert member.id == user.id


def test_an_emailed_link_dies_after_an_hour_and_a_forged_one_never_works(app, client, factories, mailbox, monkeypatch):
    factories.user(login="late@example.com")
    client.post("/auth/forgot", data={"login": "late@example.com"})
    path = "/auth/reset/" + _link_in(mailbox[0]).rsplit("/auth/reset/", 1)[1]
    token = path.rsplit("/", 1)[1]
    assert client.get("/auth/reset/" + token[:-2] + ("AA" if not token.endswith("AA") else "BB")).status_code == 410
    now = time.time()
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: now + 3601)
    late = client.get(path)
    assert late.status_code == 410 and "已过期或已被使用" in _text(late)


def test_a_password_change_kills_reset_links_still_in_the_inbox(app, client, factories, mailbox, login_as):
    member = factories.user(login="inbox@example.com")
    client.post("/auth/forgot", data={"login": "inbox@example.com"})
    path = "/auth/reset/" + _link_in(mailbox[0]).rsplit("/auth/reset/", 1)[1]
    login_as(member).post("/auth/password", data={"current": PASSWORD, "password": NEW_PASSWORD})
    assert client.get(path).status_code == 410


def test_reset_links_use_the_configured_site_url_not_the_host_header(app, client, factories, mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "SITE_URL", "https://cheyou.example")
    factories.user(login="poison@example.com")
    client.post("/auth/forgot", data={"login": "poison@example.com"}, headers={"Host": "evil.example"})
    assert _link_in(mailbox[0]).startswith("https://cheyou.example/auth/reset/")


def test_mail_settings_come_from_the_environment(monkeypatch, tmp_path):
    from app import Config

    for name, value in {"SECRET_KEY": "x", "VAPID_PRIVATE_KEY": "x", "VAPID_PUBLIC_KEY": "x", "MAIL_BACKEND": "smtp",
                        "SMTP_HOST": "smtp.example.cn", "SMTP_PORT": "465", "SMTP_USER": "u", "SMTP_PASSWORD": "p",
                        "SMTP_STARTTLS": "0", "MAIL_FROM": "车友圈 <hi@example.cn>", "SITE_URL": "https://c.example/"}.items():
        monkeypatch.setenv(name, value)
    config = Config(tmp_path)
    assert (config.MAIL_BACKEND, config.SMTP_HOST, config.SMTP_PORT, config.SMTP_USER, config.SMTP_PASSWORD,
            config.SMTP_STARTTLS, config.MAIL_FROM, config.SITE_URL) == (
        "smtp", "smtp.example.cn", 465, "u", "p", False, "车友圈 <hi@example.cn>", "https://c.example")
    monkeypatch.delenv("MAIL_BACKEND")
    assert Config(tmp_path).MAIL_BACKEND == "log"


# -- SMS login -------------------------------------------------------------------------------

def _sms_login(client, phone):
    return client.post("/auth/login/sms/send", data={"phone": phone}, headers=HX)


def test_sms_login_creates_an_account_only_after_the_privacy_policy_is_accepted(app, client):
    sent = _sms_login(client, "13600006666")
    assert sent.status_code == 200 and _has_code_field(sent)
    assert 'name="consent"' in sent.get_data(as_text=True), "a new number is asked to accept the policy"
    code = _codes(app, "login")[0][1]
    nonce = _nonce(sent)

    refused = client.post("/auth/login/sms/verify", data={"phone": "13600006666", "code": code, "nonce": nonce}, headers=HX)
    assert refused.status_code == 422 and "注册前需同意隐私政策" in _text(refused)
    assert _has_code_field(refused) and f'value="{code}"' in refused.get_data(as_text=True)
    assert _user(phone="13600006666") is None, "no account before consent"
    assert db.session.scalar(select(SmsCode.attempts)) == 0, "refusing for consent does not cost an attempt"

    done = client.post("/auth/login/sms/verify", data={"phone": "13600006666", "code": code, "nonce": nonce,
                                                       "consent": "y"}, headers=HX)
    assert done.status_code == 200 and done.headers["HX-Redirect"] == "/communities"
    user = _user(phone="13600006666")
    assert user is not None and user.phone_verified
    assert user.consent_version == app.config["PRIVACY_POLICY_VERSION"] and user.consent_at is not None
    assert "13600006666" not in user.nickname and "6666" not in user.nickname, "nicknames are public"
    assert not user.has_password and not user.check_password("")
    assert _logged_in(client)
    assert "welcome" in _kinds(user)

    twice = app.test_client().post("/auth/login/sms/verify", data={"phone": "13600006666", "code": code,
                                                                   "nonce": nonce, "consent": "y"})
    assert twice.status_code == 302, "the same form sent twice logs in once more, not 'code used'"
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 1


def test_sms_login_into_an_existing_account_verifies_its_number(app, client, factories):
    member = factories.user(login="13500005555")
    assert not member.phone_verified
    sent = _sms_login(client, "13500005555")
    assert 'name="consent"' not in sent.get_data(as_text=True), "an existing account is not asked to sign up"
    code = _codes(app, "login")[0][1]
    wrong = client.post("/auth/login/sms/verify", data={"phone": "13500005555", "code": "123123", "nonce": _nonce(sent)},
                        headers=HX)
    assert wrong.status_code == 422 and _has_code_field(wrong) and "验证码错误" in _text(wrong)
    done = client.post("/auth/login/sms/verify?next=/me/points",
                       data={"phone": "13500005555", "code": code, "nonce": _nonce(sent)})
    assert done.status_code == 302 and done.headers["Location"] == "/me/points"
    assert _logged_in(client)
    user = _user(phone="13500005555")
    assert user.phone_verified and "phone_verified" in _kinds(user)
    assert user.check_password(PASSWORD), "the password is untouched"


def test_sms_login_codes_are_capped_like_every_code(app, factories, monkeypatch):
    client = app.test_client()
    assert _sms_login(client, "13500005556").status_code == 200
    again = _sms_login(client, "13500005556")
    assert again.status_code == 422 and _has_code_field(again) and "秒后再重新获取验证码" in _text(again)
    monkeypatch.setitem(app.config, "SMS_DAILY_BUDGET", 1)
    refused = _sms_login(client, "13500005557")
    assert refused.status_code == 422 and "今天的短信验证码已发完" in _text(refused)
    assert len(app.extensions["sms"].sent) == 1
    _age_codes()
    monkeypatch.setitem(app.config, "SMS_DAILY_BUDGET", 100)
    assert _sms_login(client, "13500005556").status_code == 200


def test_a_code_for_one_purpose_does_not_work_for_another(app, client, factories):
    factories.user(login="13500004444")
    sent = client.post("/auth/forgot", data={"login": "13500004444"}, headers=HX)
    code = _codes(app, "reset")[0][1]
    login = client.post("/auth/login/sms/verify", data={"phone": "13500004444", "code": code, "nonce": _nonce(sent)})
    assert login.status_code == 422 and not _logged_in(client)


def test_an_account_made_by_sms_login_sets_its_first_password_without_a_current_one(app, client):
    sent = _sms_login(client, "13600006667")
    client.post("/auth/login/sms/verify", data={"phone": "13600006667", "code": _codes(app, "login")[0][1],
                                                "nonce": _nonce(sent), "consent": "y"})
    page = client.get("/auth/password").get_data(as_text=True)
    assert 'name="current"' not in page and 'name="password"' in page
    assert client.post("/auth/password", data={"password": NEW_PASSWORD}).status_code == 302
    assert _user(phone="13600006667").check_password(NEW_PASSWORD)
    assert 'name="current"' in client.get("/auth/password").get_data(as_text=True)


# -- per-IP and per-login rate limits on the new forms ---------------------------------------

@pytest.mark.parametrize("url, data", [
    ("/auth/forgot", {"login": "13100000000"}),
    ("/auth/login/sms/send", {"phone": "not a number"}),
    ("/auth/login/sms/verify", {"phone": "13100000000", "code": "000000", "nonce": "n" * 24}),
    ("/auth/forgot/reset", {"phone": "13100000000", "code": "000000", "password": "x", "nonce": "n" * 24}),
    ("/auth/reset/not-a-token", {"password": "x"}),
])
def test_every_new_form_is_rate_limited_per_ip(app, limiter_on, url, data):
    client = app.test_client()
    statuses = [client.post(url, data=data).status_code for _ in range(11)]
    assert 429 in statuses and 429 not in statuses[:5]


def test_forgot_is_rate_limited_per_address_across_ips(app, limiter_on, factories, mailbox):
    factories.user(login="target@example.com")
    statuses = [app.test_client().post("/auth/forgot", data={"login": "target@example.com"},
                                       environ_base={"REMOTE_ADDR": f"10.0.0.{i}"}).status_code for i in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
    assert len(mailbox) == 5


@pytest.mark.parametrize("path, number_field", [("/auth/login/sms/verify", "phone"), ("/auth/forgot/reset", "phone")])
def test_a_stale_code_form_or_a_bad_number_starts_over_at_the_number_with_why(client, path, number_field):
    """The code step sent twice (its nonce is gone) or with a number that is not one: the number
    form comes back saying why (it once answered 500: the refusal was appended to a tuple)."""
    code = {"code": "123456", "password": "abcdefgh12", "confirm": "abcdefgh12", "consent": "y"}
    stale = client.post(path, data={number_field: "13800138000", "nonce": "stale", **code})
    assert stale.status_code == 422
    assert "表单已过期" in _text(stale) and "13800138000" in stale.get_data(as_text=True)
    bad_number = client.post(path, data={number_field: "12345", "nonce": "x" * 32, **code})
    assert bad_number.status_code == 422
    assert "请输入有效的中国大陆手机号" in _text(bad_number)
