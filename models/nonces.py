"""One-time form nonces: a form that creates something carries one, so a double tap, a retry
over a flaky network or a resubmitted page creates it once.

The nonce is stored on what the form created, unique per member; the creating function calls
`first_submission`, which locks the member and finds what an earlier submission of the same
nonce made, and hands that back (`AlreadySubmitted`) instead of creating (or paying for) it again."""
from __future__ import annotations

import re
import secrets

from sqlalchemy import select

from models import N_, DomainError, db
from models.loyalty.ledger import lock_member

NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def check_nonce(nonce: str | None) -> str:
    """The nonce if well formed; else the form is stale or forged, and the member reloads it."""
    if not NONCE_RE.match(nonce or ""):
        raise DomainError(N_("This form has expired. Reload the page and try again."))
    return nonce


class AlreadySubmitted(Exception):
    """The form's nonce was used before: FIRST is what that submission created."""

    def __init__(self, first):
        super().__init__(f"already submitted: {first!r}")
        self.first = first


def first_submission(member, nonce: str | None, nonce_column, owner_column):
    """What MEMBER's earlier submission of NONCE made (a row of NONCE_COLUMN's model whose
    OWNER_COLUMN is the member), or None. Refuses a malformed nonce; locks the member first, so
    concurrent submissions of one nonce take turns and the later ones find the first's row."""
    check_nonce(nonce)
    lock_member(member)
    model = nonce_column.class_
    return db.session.scalar(select(model).where(owner_column == member.id, nonce_column == nonce))
