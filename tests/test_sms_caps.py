"""SMS abuse caps: at most 3 distinct numbers per account per Shanghai day, and a site-wide
daily budget that refuses further codes and alerts the operators once."""
from __future__ import annotations

import html
import logging
from datetime import timedelta

from sqlalchemy import select, update

from models import SmsCode, db
from models.types import shanghai_day, shanghai_midnight, utcnow
from tests.live import LiveServer, fire_at_once, session_cookie_for

NUMBERS = ["13800000001", "13800000002", "13800000003", "13800000004", "13800000005"]
DISTINCT_CAP_ZH = "每个账号每天最多向 3 个不同的号码发送验证码"
DISTINCT_CAP_EN = "Codes can go to at most 3 different numbers per account each day"
BUDGET_ZH = "今天的短信验证码已发完"
BUDGET_EN = "Today's verification texts have run out"


def _send(client, phone):
    return client.post("/auth/phone/send", data={"phone": phone}, headers={"HX-Request": "true"})


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _sent_to(app) -> list[str]:
    return [phone for phone, _code, _purpose in app.extensions["sms"].sent]


def _move_codes(when, phones=None):
    """Pretend the codes (of PHONES, or all) were sent at WHEN."""
    statement = update(SmsCode).values(created_at=when)
    if phones is not None:
        statement = statement.where(SmsCode.phone.in_(phones))
    db.session.execute(statement)
    db.session.commit()


def alerts(caplog):
    return [r for r in caplog.records if r.levelno >= logging.ERROR and "budget" in r.getMessage()]


def test_a_fourth_number_the_same_day_is_refused_and_the_first_three_still_work(app, login_as, factories):
    client = login_as(factories.user())
    for number in NUMBERS[:3]:
        assert _send(client, number).status_code == 200
    response = _send(client, NUMBERS[3])
    assert response.status_code == 422
    body = _text(response)
    assert DISTINCT_CAP_ZH in body
    assert f'value="{NUMBERS[3]}"' in body, "the number typed stays in the form"
    assert _sent_to(app) == NUMBERS[:3], "nothing is sent to the fourth number"

    _move_codes(utcnow() - timedelta(minutes=2))  # past the 60-second resend wait
    assert _send(client, NUMBERS[0]).status_code == 200, "a resend to one of today's numbers still works"
    assert _sent_to(app) == NUMBERS[:3] + [NUMBERS[0]]

    client.set_cookie("lang", "en")
    response = _send(client, NUMBERS[4])
    assert response.status_code == 422
    assert DISTINCT_CAP_EN in _text(response), "the refusal speaks the member's language"
    assert len(_sent_to(app)) == 4

    other = login_as(factories.user())
    assert _send(other, NUMBERS[4]).status_code == 200, "the cap is per account"


def test_the_cap_resets_on_the_next_shanghai_day(app, login_as, factories):
    client = login_as(factories.user())
    for number in NUMBERS[:3]:
        assert _send(client, number).status_code == 200
    midnight = shanghai_midnight(shanghai_day())

    _move_codes(midnight + timedelta(seconds=1))  # sent just after midnight in Shanghai: still today
    response = _send(client, NUMBERS[3])
    assert response.status_code == 422 and DISTINCT_CAP_ZH in _text(response)

    _move_codes(midnight - timedelta(seconds=1))  # sent just before midnight in Shanghai: yesterday
    assert _send(client, NUMBERS[3]).status_code == 200
    assert _sent_to(app) == NUMBERS[:4]


def test_the_site_wide_budget_refuses_when_reached_and_alerts_once(app, login_as, factories, monkeypatch, caplog):
    monkeypatch.setitem(app.config, "SMS_DAILY_BUDGET", 2)
    members = [login_as(factories.user()) for _ in range(4)]
    caplog.set_level(logging.INFO)
    assert _send(members[0], NUMBERS[0]).status_code == 200
    assert alerts(caplog) == []
    assert _send(members[1], NUMBERS[1]).status_code == 200

    response = _send(members[2], NUMBERS[2])
    assert response.status_code == 422
    body = _text(response)
    assert BUDGET_ZH in body
    assert f'value="{NUMBERS[2]}"' in body, "the number typed stays in the form"
    members[3].set_cookie("lang", "en")
    response = _send(members[3], NUMBERS[3])
    assert response.status_code == 422 and BUDGET_EN in _text(response)
    assert _sent_to(app) == NUMBERS[:2], "nothing is sent once the budget is spent"
    assert len(alerts(caplog)) == 1, "the operators are alerted once, not per refused request"

    _move_codes(shanghai_midnight(shanghai_day()) - timedelta(seconds=1))  # yesterday's codes
    assert _send(members[2], NUMBERS[2]).status_code == 200, "the budget is per Shanghai day"


def test_the_budget_comes_from_the_environment(monkeypatch, tmp_path):
    from app import Config

    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("VAPID_PRIVATE_KEY", "x")
    monkeypatch.setenv("VAPID_PUBLIC_KEY", "x")
    monkeypatch.setenv("SMS_DAILY_BUDGET", "250")
    assert Config(tmp_path).SMS_DAILY_BUDGET == 250
    monkeypatch.delenv("SMS_DAILY_BUDGET")
    assert Config(tmp_path).SMS_DAILY_BUDGET > 0


def _send_call(base_url, cookie, phone):
    def call(http):
        return http.post(f"{base_url}/auth/phone/send", data={"phone": phone}, cookies={"session": cookie},
                         headers={"HX-Request": "true"}, timeout=60)
    return call


def test_five_numbers_at_once_from_one_member_send_three(app, factories):
    cookie = session_cookie_for(app, factories.user())
    with LiveServer(app) as server:
        responses = fire_at_once([_send_call(server.url, cookie, number) for number in NUMBERS])
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 422, 422]
    assert len(_sent_to(app)) == 3
    db.session.rollback()
    assert len(db.session.scalars(select(SmsCode)).all()) == 3


def test_the_budget_holds_when_many_members_ask_at_once(app, factories, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_DAILY_BUDGET", 2)
    cookies = [session_cookie_for(app, factories.user()) for _ in NUMBERS]
    with LiveServer(app) as server:
        responses = fire_at_once([_send_call(server.url, c, n) for c, n in zip(cookies, NUMBERS)])
    assert sorted(r.status_code for r in responses) == [200, 200, 422, 422, 422]
    assert len(_sent_to(app)) == 2
