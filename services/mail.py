"""E-mail delivery behind one interface, chosen by `MAIL_BACKEND`.

- `log` (the default, development): the message goes to the server log, and into `sent` for tests.
- `smtp`: smtplib to `SMTP_HOST`:`SMTP_PORT`, STARTTLS unless `SMTP_STARTTLS=0`, login when
  `SMTP_USER` is set; the sender is `MAIL_FROM`.

Mail is sent by a job (`services.tasks.send_password_reset_mail`), never inside a request: a
slow or unreachable server must not hold a page, and a failure is retried with back-off.
"""
from __future__ import annotations

import logging
import smtplib
import ssl
from collections import deque
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import Flask

log = logging.getLogger("cheyou.mail")


class MailBackend:
    def __init__(self, app: Flask):
        self.sender = app.config.get("MAIL_FROM") or "车友圈 <no-reply@cheyou.example>"

    def message(self, to: str, subject: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2].strip("> ") or None)
        msg.set_content(body)  # UTF-8, quoted-printable or base64 as needed for Chinese text
        return msg

    def send(self, to: str, subject: str, body: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class LogMailBackend(MailBackend):
    """Development backend: the whole message appears in the log (a reset link among it)."""

    def __init__(self, app: Flask):
        super().__init__(app)
        self.sent: deque[EmailMessage] = deque(maxlen=200)  # the latest only: a long-running process must not grow

    def send(self, to, subject, body):
        msg = self.message(to, subject, body)
        self.sent.append(msg)
        log.warning("Mail to %s: %s\n%s", to, subject, body)


class SmtpMailBackend(MailBackend):
    """Any SMTP relay (the provider's, or a local postfix)."""

    def __init__(self, app: Flask):
        super().__init__(app)
        config = app.config
        self.host = config.get("SMTP_HOST") or "localhost"
        self.port = int(config.get("SMTP_PORT") or 587)
        self.user = config.get("SMTP_USER") or None
        self.password = config.get("SMTP_PASSWORD") or ""
        self.starttls = bool(config.get("SMTP_STARTTLS", True))
        self.timeout = float(config.get("SMTP_TIMEOUT") or 20)

    def send(self, to, subject, body):
        msg = self.message(to, subject, body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(msg)
        log.info("Mail sent to %s via %s:%s: %s", to, self.host, self.port, subject)


BACKENDS = {"log": LogMailBackend, "smtp": SmtpMailBackend}


def get_backend(app: Flask) -> MailBackend:
    backend = app.extensions.get("mail")
    if backend is None:
        name = app.config.get("MAIL_BACKEND", "log")
        if name not in BACKENDS:
            raise RuntimeError(f"unknown MAIL_BACKEND {name!r}; available: {', '.join(BACKENDS)}")
        backend = app.extensions["mail"] = BACKENDS[name](app)
    return backend
