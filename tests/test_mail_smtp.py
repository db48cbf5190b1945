"""The SMTP mail backend against a real SMTP server (aiosmtpd) started by the test."""
from __future__ import annotations

import re
import socket
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from models import User, db

pytest.importorskip("aiosmtpd")

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult  # noqa: E402


class Inbox:
    """aiosmtpd handler keeping every message received, and the logins it accepted."""

    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.original_content, policy=policy.default)))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login, auth_data.password) == (b"cheyou", b"s3cret")
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(app):
    """A local SMTP server, and the app's mail backend pointed at it (restored after)."""
    from services.mail import SmtpMailBackend

    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
                            auth_require_tls=False)
    controller.start()
    saved = {k: app.config.get(k) for k in ("MAIL_BACKEND", "SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD",
                                             "SMTP_STARTTLS", "MAIL_FROM")}
    previous = app.extensions.pop("mail", None)
    app.config.update(MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_USER="cheyou",
                      SMTP_PASSWORD="s3cret", SMTP_STARTTLS=False, MAIL_FROM="车友圈 <no-reply@cheyou.example>")
    try:
        from services.mail import get_backend

        assert isinstance(get_backend(app), SmtpMailBackend)
        yield inbox
    finally:
        controller.stop()
        app.config.update(saved)
        app.extensions.pop("mail", None)
        if previous is not None:
            app.extensions["mail"] = previous


def test_a_reset_mail_arrives_over_smtp_and_its_link_works(app, client, factories, smtp_server):
    factories.user(login="smtp.member@example.com", nickname="王师傅")
    response = client.post("/auth/forgot", data={"login": "smtp.member@example.com"})
    assert response.status_code == 200

    (mail_from, rcpt_tos, message), = smtp_server.messages
    assert smtp_server.logins == ["cheyou"], "the backend logs in with SMTP_USER / SMTP_PASSWORD"
    assert mail_from == "no-reply@cheyou.example" and rcpt_tos == ["smtp.member@example.com"]
    assert message["Subject"] == "重设你的车友圈密码"
    assert message["From"].addresses[0].display_name == "车友圈"
    body = message.get_content()
    assert "王师傅" in body
    link = re.search(r"http://localhost/auth/reset/\S+", body).group(0)

    path = link.removeprefix("http://localhost")
    assert client.get(path).status_code == 200
    assert client.post(path, data={"password": "Smtp2026newpw"}).status_code == 302
    db.session.rollback()
    user = db.session.scalar(select(User).where(User.email == "smtp.member@example.com"))
    assert user.check_password("Smtp2026newpw")
    assert client.get("/me").status_code == 200


def test_an_unknown_address_gets_no_mail_over_smtp(app, client, smtp_server):
    assert client.post("/auth/forgot", data={"login": "stranger@example.com"}).status_code == 200
    assert smtp_server.messages == []
