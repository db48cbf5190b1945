"""The one codec for "load more" cursors (the events listing, the story feeds, search).

A cursor is opaque and tamper-safe: base64url JSON of the last row's sort key, signed with an
HMAC of the app's secret key and of the listing it belongs to. Whatever a visitor sends that does
not decode, was altered, belongs to another listing or has the wrong types reads as None, and
the listing starts from its first page (it is a position, never an error).

Datetimes travel as exact microseconds since the epoch: no float rounding, so a cursor always
hits its own row; floats travel as JSON's exact `repr`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from datetime import datetime, timedelta, timezone

from flask import current_app

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SIG_BYTES = 12
MAX_LENGTH = 300  # longer is not one of ours: refused before any decoding


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(listing: str, payload: bytes) -> bytes:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"cursor:" + listing.encode() + b":" + payload, hashlib.sha256).digest()[:_SIG_BYTES]


def encode(listing: str, *values) -> str:
    """A cursor for LISTING ('events', 'stories', …) carrying VALUES (datetimes, ints, floats)."""
    plain = [_micros(v) if isinstance(v, datetime) else v for v in values]
    payload = json.dumps(plain, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_signature(listing, payload))}"


def _typed(value, kind):
    if isinstance(value, bool):
        raise ValueError("not a number")
    if kind is datetime and isinstance(value, int):
        return _EPOCH + timedelta(microseconds=value)
    if kind is int and isinstance(value, int):
        return value
    if kind is float and isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    raise ValueError(f"expected {kind.__name__}")


def decode(listing: str, cursor: str | None, *kinds: type) -> tuple | None:
    """The values `encode(LISTING, …)` put in CURSOR, as KINDS; None for anything else."""
    if not cursor or len(cursor) > MAX_LENGTH or cursor.count(".") != 1:
        return None
    body, sig = cursor.split(".")
    try:
        payload, sent = _unb64(body), _unb64(sig)
        if not hmac.compare_digest(sent, _signature(listing, payload)):
            return None
        values = json.loads(payload)
        if not isinstance(values, list) or len(values) != len(kinds):
            return None
        return tuple(_typed(value, kind) for value, kind in zip(values, kinds))
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        return None
