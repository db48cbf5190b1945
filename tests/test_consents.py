"""Consents: recorded at both signups and on every change of the marketing opt-in, which a member
changes on /me/notifications at any time; members from before the record start opted out."""
from __future__ import annotations

import html
import re

from sqlalchemy import select

from models import User, db
from models.consents import Consent, history, set_marketing

HX = {"HX-Request": "true"}


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _consents(member) -> list[tuple[bool, str]]:
    db.session.rollback()
    return [(c.marketing_opt_in, c.source) for c in history(db.session.get(User, member.id))]


def _opted_in(member) -> bool:
    db.session.rollback()
    return db.session.scalar(select(User.marketing_opt_in).where(User.id == member.id))


# -- at signup --------------------------------------------------------------------------------------

def test_the_signup_form_records_the_policy_and_the_marketing_choice(app, client, communities):
    for login, marketing in (("yes@example.com", "y"), ("no@example.com", "")):
        client.post("/auth/logout")
        response = client.post("/auth/signup", data={"login": login, "nickname": "新车友", "password": "Abcdef123",
                                                      "consent": "y", "marketing": marketing})
        assert response.status_code == 302
    yes, no = (db.session.scalar(select(User).where(User.email == e)) for e in ("yes@example.com", "no@example.com"))
    assert (yes.marketing_opt_in, no.marketing_opt_in) == (True, False)
    for user, opted in ((yes, True), (no, False)):
        [consent] = db.session.scalars(select(Consent).where(Consent.user_id == user.id)).all()
        assert (consent.policy_version, consent.marketing_opt_in, consent.source, consent.ip) == (
            app.config["PRIVACY_POLICY_VERSION"], opted, "signup", "127.0.0.1")
        assert consent.given_at == user.consent_at


def test_an_account_made_by_sms_login_records_its_consent_not_opted_in(app, client):
    sent = client.post("/auth/login/sms/send", data={"phone": "13600008888"}, headers=HX)
    code = [c for _phone, c, purpose in app.extensions["sms"].sent if purpose == "login"][0]
    nonce = re.search(r'name="nonce" value="([^"]+)"', sent.get_data(as_text=True)).group(1)
    done = client.post("/auth/login/sms/verify", data={"phone": "13600008888", "code": code, "nonce": nonce,
                                                       "consent": "y"}, headers=HX)
    assert done.status_code == 200 and done.headers["HX-Redirect"] == "/communities"
    user = db.session.scalar(select(User).where(User.phone == "13600008888"))
    assert not user.marketing_opt_in
    assert _consents(user) == [(False, "sms_signup")]
    assert db.session.scalar(select(Consent.policy_version)) == app.config["PRIVACY_POLICY_VERSION"]


# -- changing it on /me/notifications --------------------------------------------------------------

def test_a_member_turns_offers_on_and_off_in_place(login_as, factories):
    member = factories.user()
    client = login_as(member)
    page = _text(client.get("/me/notifications"))
    assert "接收活动与优惠推送（可随时关闭）" in page and "已关闭" in page
    assert 'action="/me/notifications/marketing"' in page

    on = client.post("/me/notifications/marketing", data={"opt_in": "1"}, headers=HX)
    assert on.status_code == 200 and 'id="marketing-consent"' in _text(on)
    assert "已开启" in _text(on) and "已保存" in _text(on) and "<html" not in _text(on)
    assert _opted_in(member) is True

    again = client.post("/me/notifications/marketing", data={"opt_in": "1"}, headers=HX)  # a double tap
    assert again.status_code == 200 and "已开启" in _text(again)
    off = client.post("/me/notifications/marketing", data={"opt_in": "0"}, headers=HX)
    assert "已关闭" in _text(off) and _opted_in(member) is False
    assert _consents(member) == [(False, "settings"), (True, "settings")], "one record a change, newest first"
    assert "已关闭" in _text(client.get("/me/notifications"))


def test_without_javascript_the_form_saves_and_returns_to_the_page(login_as, factories):
    member = factories.user()
    client = login_as(member)
    response = client.post("/me/notifications/marketing", data={"opt_in": "1"})
    assert response.status_code == 302 and response.headers["Location"] == "/me/notifications"
    page = _text(client.get("/me/notifications"))
    assert "已保存" in page and "已开启" in page
    assert _opted_in(member) is True


def test_a_stale_form_changes_nothing(login_as, factories, csrf_on):
    member = factories.user()
    response = login_as(member).post("/me/notifications/marketing", data={"opt_in": "1"}, headers=HX)
    assert response.status_code == 400
    assert _opted_in(member) is False and _consents(member) == []


def test_the_english_page_says_the_same(login_as, factories):
    member = factories.user(locale="en")
    page = _text(login_as(member).get("/me/notifications"))
    assert "Receive event and offer messages (you can turn them off at any time)" in page


def test_set_marketing_records_the_address_and_ignores_a_repeat(app, factories):
    member = factories.user()
    assert set_marketing(member, False) is None
    row = set_marketing(member, True, source="unsubscribe", ip="2001:db8::1")
    db.session.commit()
    assert (row.marketing_opt_in, row.source, row.ip) == (True, "unsubscribe", "2001:db8::1")


# -- members from before the record ---------------------------------------------------------------

def test_members_who_signed_up_before_the_record_start_opted_out(tmp_path):
    """Migrate a fresh database to just before this record, with a member who had ticked the old
    checkbox, then on: they are no longer opted in."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app import create_app
    from extensions import limiter

    limiter_enabled = limiter.enabled  # another app's init must not switch the shared limiter
    other = create_app({"TESTING": True, "SECRET_KEY": "x", "JOBS_MODE": "eager", "RATELIMIT_ENABLED": False,
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'before.sqlite3'}"},
                       instance_path=str(tmp_path / "instance"))
    with other.app_context():
        upgrade(revision="3f9b2d7c5e61")
        db.session.execute(text(
            "INSERT INTO users (email, password_hash, nickname, session_token, consent_version, consent_at,"
            " marketing_opt_in, created_at, level_number) VALUES ('old@example.com', 'x', '老车友', 't', '2026-01',"
            " '2026-01-01 00:00:00', 1, '2026-01-01 00:00:00', 1)"))
        db.session.commit()
        upgrade(revision="a7c1e2d3f401")
        assert db.session.scalar(text("SELECT marketing_opt_in FROM users")) in (0, False)
        db.session.remove()
        db.engine.dispose()
    limiter.enabled = limiter_enabled
