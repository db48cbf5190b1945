"""One number, one account: the rule is `models.accounts.check_phone_claim` / `verify_phone`;
the phone pages only ask it. What a member sees: a number another account uses is refused
before a code is sent, and a number taken while the code was on its way is refused without
spending the code."""
from __future__ import annotations

from sqlalchemy import select

from models import SmsCode, User, db


def _send(client, phone="13812345678"):
    return client.post("/auth/phone/send", data={"phone": phone}, headers={"HX-Request": "true"})


def _verify(client, code, phone="13812345678"):
    return client.post("/auth/phone/verify", data={"phone": phone, "code": code}, headers={"HX-Request": "true"})


def test_a_number_of_another_account_gets_no_code(app, login_as, factories):
    factories.user(login="13812345678")
    response = _send(login_as(factories.user()))
    assert response.status_code == 422
    assert "该手机号已绑定其他账号" in response.get_data(as_text=True)
    assert not getattr(app.extensions.get("sms"), "sent", None)  # no code went out


def test_a_number_already_verified_on_this_account_gets_no_code(app, login_as, factories):
    response = _send(login_as(factories.user(login="13812345678", verified=True)))
    assert response.status_code == 422
    assert "该手机号已验证" in response.get_data(as_text=True)
    assert not getattr(app.extensions.get("sms"), "sent", None)  # no code went out


def test_a_number_taken_meanwhile_is_refused_and_the_code_stays_unused(app, login_as, factories):
    member = factories.user()
    client = login_as(member)
    assert _send(client).status_code == 200
    _, code, _ = app.extensions["sms"].sent[-1]
    other = factories.user(login="13812345678")  # signs up with the number while the code travels
    response = _verify(client, code)
    assert response.status_code == 422
    assert "该手机号已绑定其他账号" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, member.id).phone is None
    assert db.session.scalar(select(SmsCode.consumed_at)) is None

    db.session.delete(db.session.get(User, other.id))  # the other account goes: the same code now works
    db.session.commit()
    response = _verify(client, code)
    assert response.status_code == 200
    db.session.expire_all()
    verified = db.session.get(User, member.id)
    assert verified.phone == "13812345678" and verified.phone_verified
