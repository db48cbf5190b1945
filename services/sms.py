"""SMS delivery behind one interface. `log` (development) writes the code to the log."""
from __future__ import annotations

import logging
from collections import deque

from flask import Flask

log = logging.getLogger("cheyou.sms")


class SmsBackend:
    def send_code(self, phone: str, code: str, purpose: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class LogSmsBackend(SmsBackend):
    """Development backend: the code appears in the server log, and in `sent` for tests."""

    def __init__(self):
        self.sent: deque[tuple[str, str, str]] = deque(maxlen=200)  # the latest only: a long-running process must not grow

    def send_code(self, phone, code, purpose):
        self.sent.append((phone, code, purpose))
        log.warning("SMS to %s: 【车友圈】验证码 %s，5 分钟内有效。(purpose=%s)", phone, code, purpose)


BACKENDS = {"log": LogSmsBackend}


def get_backend(app: Flask) -> SmsBackend:
    backend = app.extensions.get("sms")
    if backend is None:
        name = app.config.get("SMS_BACKEND", "log")
        if name not in BACKENDS:
            raise RuntimeError(f"unknown SMS_BACKEND {name!r}; available: {', '.join(BACKENDS)}")
        backend = app.extensions["sms"] = BACKENDS[name]()
    return backend
