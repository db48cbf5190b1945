"""Accounts, role grants and SMS verification codes."""
from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import secrets
from datetime import date, datetime, timedelta

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, Date, ForeignKey, String, UniqueConstraint, bindparam, exists, func, select
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship, with_expression
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.security import check_password_hash, generate_password_hash

from models import N_, DomainError, built_once, db
from models.audit import audit
from models.notifications import Notification, notify
from models.types import UTCDateTime, shanghai_day, shanghai_midnight, utcnow

log = logging.getLogger("cheyou.sms")

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_login(value: str) -> tuple[str, str]:
    """Return ('phone'|'email', canonical value) or raise DomainError."""
    value = (value or "").strip()
    digits = re.sub(r"[\s-]", "", value)
    if digits.startswith("+86"):
        digits = digits[3:]
    if digits.isdigit():
        if not PHONE_RE.match(digits):
            raise DomainError("Enter a valid mainland mobile number (11 digits, starting with 1).")
        return "phone", digits
    if EMAIL_RE.match(value) and len(value) <= 254:
        return "email", value.lower()
    raise DomainError("Enter an e-mail address or a mainland mobile number.")


def mask_phone(phone: str | None) -> str:
    """138****5678: how a number appears outside its owner's own pages."""
    if not phone:
        return ""
    return phone[:3] + "****" + phone[-4:]


class Role(str, enum.Enum):
    organizer = "organizer"
    moderator = "moderator"
    partner = "partner"
    admin = "admin"


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("email IS NOT NULL OR phone IS NOT NULL", name="has_login"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(11), unique=True)
    phone_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    nickname: Mapped[str] = mapped_column(String(40), nullable=False)
    locale: Mapped[str | None] = mapped_column(String(10))
    # Part of the login cookie: rotating it ends every other session.
    session_token: Mapped[str] = mapped_column(String(32), nullable=False, default=lambda: secrets.token_hex(16))
    # Loaded with the member by `from_session_id` (the session's user loader);
    # None when not loaded, or after a commit expired it.
    unread_total: Mapped[int | None] = query_expression()
    # Whether the member holds any role, asked with them per request: most hold none, and their
    # `grants` are then known empty without a query.
    holds_grants: Mapped[bool | None] = query_expression()
    consent_version: Mapped[str] = mapped_column(String(20), nullable=False)
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    marketing_opt_in: Mapped[bool] = mapped_column(nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    # The level we last told the member about (level_of() is the truth; this detects changes).
    level_number: Mapped[int] = mapped_column(nullable=False, default=1)
    # Referral (老带新): who invited this member, and the device cookie they signed up on.
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    signup_device: Mapped[str | None] = mapped_column(String(32), index=True)
    # The latest Shanghai day the member was active (models/activity.py keeps it with member_days).
    last_active_on: Mapped[date | None] = mapped_column(Date, index=True)

    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="user", foreign_keys="RoleGrant.user_id", cascade="all, delete-orphan"
    )

    # -- identity -------------------------------------------------------
    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    @classmethod
    def from_session_id(cls, value: str) -> User | None:
        """The member a session cookie names, if its token is still theirs, loaded with their
        unread count in the same query (the layout shows it on every page)."""
        user_id, _, token = (value or "").partition(":")
        if not user_id.isdigit() or not token:
            return None
        user = db.session.scalar(_session_user_query(), {"user_id": int(user_id)})
        if user is None or not hmac.compare_digest(user.session_token, token):
            return None
        if user.holds_grants is False and "grants" not in user.__dict__:
            set_committed_value(user, "grants", [])
        return user

    @classmethod
    def find_by_login(cls, login: str) -> User | None:
        try:
            kind, value = normalise_login(login)
        except DomainError:
            return None
        column = cls.phone if kind == "phone" else cls.email
        return db.session.scalar(select(cls).where(column == value))

    @classmethod
    def login_taken(cls, kind: str, value: str) -> bool:
        column = cls.phone if kind == "phone" else cls.email
        return db.session.scalar(select(func.count()).select_from(cls).where(column == value)) > 0

    @staticmethod
    def hash_password(password: str) -> str:
        """Slow on purpose (scrypt, ~0.1–0.3 s): a request hashes before it takes the write lock."""
        return generate_password_hash(password)

    def set_password(self, password: str) -> None:
        self.password_hash = self.hash_password(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def change_password(self, password_hash: str) -> None:
        """Set a new password, hashed by `hash_password`, and end every other session (their
        cookies carry the old token)."""
        self.password_hash = password_hash
        self.session_token = secrets.token_hex(16)

    # An account made by SMS login has no password until the member sets one: its hash is this
    # prefix and random text, which no password ever matches (werkzeug's check fails on it).
    NO_PASSWORD = "!none$"

    @property
    def has_password(self) -> bool:
        return not self.password_hash.startswith(self.NO_PASSWORD)

    # -- password reset by e-mail -----------------------------------------
    # The link carries the account id and a fingerprint of its current password hash and session
    # token, signed with the site's secret and dated. No table: the link dies after an hour
    # (signature age), and once used, because the reset changes both hash and token (so does any
    # other password change, which also kills links still in the inbox).
    RESET_LINK_MAX_AGE = 60 * 60
    _RESET_SALT = "cheyou.password-reset"

    def _reset_fingerprint(self) -> str:
        return hashlib.sha256(f"{self.password_hash}:{self.session_token}".encode()).hexdigest()[:24]

    def reset_token(self, secret_key: str) -> str:
        from itsdangerous import URLSafeTimedSerializer

        return URLSafeTimedSerializer(secret_key, salt=self._RESET_SALT).dumps({"u": self.id, "f": self._reset_fingerprint()})

    @classmethod
    def from_reset_token(cls, token: str, secret_key: str, max_age: int | None = None) -> User:
        """The account a reset link was made for, or DomainError if it is forged, expired or used."""
        from itsdangerous import BadData, URLSafeTimedSerializer

        try:
            data = URLSafeTimedSerializer(secret_key, salt=cls._RESET_SALT).loads(
                token, max_age=max_age if max_age is not None else cls.RESET_LINK_MAX_AGE)
            user = db.session.get(cls, int(data["u"]))
        except (BadData, KeyError, TypeError, ValueError):
            user = None
            data = {}
        if user is None or not hmac.compare_digest(user._reset_fingerprint(), str(data.get("f", ""))):
            raise DomainError("This link has expired or was already used. Ask for a new one.")
        return user

    def mark_phone_verified(self, now: datetime | None = None) -> bool:
        """Record that the member proved they hold their number (an SMS code); True if it is new."""
        if self.phone_verified_at is not None:
            return False
        self.phone_verified_at = now or utcnow()
        return True

    @property
    def login_label(self) -> str:
        return self.email or mask_phone(self.phone)

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)

    @property
    def phone_verified(self) -> bool:
        return self.phone_verified_at is not None

    @property
    def can_post(self) -> bool:
        """Stories and comments need a verified mobile number (pages ask before showing a form)."""
        return self.phone_verified

    # -- roles ------------------------------------------------------------
    @property
    def is_admin(self) -> bool:
        return any(g.role == Role.admin.value for g in self.grants)

    def has_role(self, role: str, community=None, partner=None) -> bool:
        """True if the account holds ROLE (for that community or partner when given); admins hold all."""
        if self.is_admin:
            return True
        for g in self.grants:
            if g.role != role:
                continue
            if community is not None and g.community_id != _id(community):
                continue
            if partner is not None and g.partner_id != _id(partner):
                continue
            return True
        return False

    def communities_where(self, role: str) -> list[int]:
        return [g.community_id for g in self.grants if g.role == role and g.community_id]

    def partner_ids(self) -> list[int]:
        return [g.partner_id for g in self.grants if g.role == Role.partner.value and g.partner_id]

    def grant(self, role: str, community=None, partner=None, by=None) -> RoleGrant:
        """Give this account a role (idempotent); scoped roles need their community or partner."""
        role = Role(role).value
        if role in ("organizer", "moderator") and community is None:
            raise DomainError("This role needs a community.")
        if role == "partner" and partner is None:
            raise DomainError("This role needs a partner business.")
        scope = RoleGrant.scope_for(role, community, partner)
        for g in self.grants:
            if g.role == role and g.scope == scope:
                return g
        grant = RoleGrant(
            role=role,
            scope=scope,
            community_id=_id(community) if role in ("organizer", "moderator") else None,
            partner_id=_id(partner) if role == "partner" else None,
            granted_by_id=_id(by) if by is not None else None,
        )
        self.grants.append(grant)
        db.session.flush()
        return grant


def _id(obj):
    return obj if isinstance(obj, int) or obj is None else obj.id


class RoleGrant(db.Model):
    """A role held by an account: organizer/moderator per community, partner staff per partner, admin site-wide."""

    __tablename__ = "role_grants"
    __table_args__ = (
        UniqueConstraint("user_id", "role", "scope"),
        CheckConstraint("role IN ('organizer','moderator','partner','admin')", name="known_role"),
        CheckConstraint(
            "(role IN ('organizer','moderator') AND community_id IS NOT NULL AND partner_id IS NULL)"
            " OR (role = 'partner' AND partner_id IS NOT NULL AND community_id IS NULL)"
            " OR (role = 'admin' AND community_id IS NULL AND partner_id IS NULL)",
            name="scope_matches_role",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    scope: Mapped[str] = mapped_column(String(30), nullable=False)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    user: Mapped[User] = relationship(back_populates="grants", foreign_keys=[user_id])
    community = relationship("Community", lazy="joined")
    partner = relationship("Partner", lazy="joined")

    @staticmethod
    def scope_for(role: str, community=None, partner=None) -> str:
        if role in ("organizer", "moderator"):
            return f"community:{_id(community)}"
        if role == "partner":
            return f"partner:{_id(partner)}"
        return "site"


class SmsCode(db.Model):
    """A one-time code sent to a mobile number; stored hashed, short-lived, few attempts.

    Every text costs money and can be abused to flood strangers' phones, so every path that
    sends a code goes through `issue()`, which holds all the caps in one place.
    """

    __tablename__ = "sms_codes"

    TTL = timedelta(minutes=5)
    RESEND_AFTER = timedelta(seconds=60)
    MAX_ATTEMPTS = 5
    MAX_PER_DAY = 10
    MAX_NUMBERS_PER_ACCOUNT = 3  # distinct numbers one account may have codes sent to, per Shanghai day
    # Key of the PostgreSQL advisory lock that serialises issuing (SQLite's BEGIN IMMEDIATE already does).
    ISSUE_LOCK = 0x4359_534D  # "CYSM"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    purpose: Mapped[str] = mapped_column(String(20), nullable=False)
    # The signed-in account that asked for the code (none for a code asked before signing in).
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    attempts: Mapped[int] = mapped_column(nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The one-time nonce of the form that consumed the code (SMS login, reset): the same form sent
    # twice (a double tap, a retry) finds its first success instead of a used code.
    nonce: Mapped[str | None] = mapped_column(String(64))

    @staticmethod
    def _hash(phone: str, code: str) -> str:
        return hashlib.sha256(f"{phone}:{code}".encode()).hexdigest()

    @classmethod
    def issue(cls, phone: str, purpose: str = "verify", *, requested_by: User | None, daily_budget: int,
              now: datetime | None = None) -> str:
        """Create a code for PHONE and return it in clear (for the SMS), or raise DomainError.

        The one gate for every code sent (verification, and later SMS login and password reset):
        per number (RESEND_AFTER apart, MAX_PER_DAY a day), per account REQUESTED_BY
        (MAX_NUMBERS_PER_ACCOUNT distinct numbers a Shanghai day) and site-wide (daily_budget
        codes a Shanghai day; reaching it logs one alert). The caller commits, then sends.
        """
        now = now or utcnow()
        cls._serialise_issuing()
        last = db.session.scalar(
            select(cls).where(cls.phone == phone).order_by(cls.created_at.desc()).limit(1)
        )
        if last is not None and now - last.created_at < cls.RESEND_AFTER:
            wait = int((cls.RESEND_AFTER - (now - last.created_at)).total_seconds()) + 1
            raise DomainError("Please wait %(seconds)s seconds before asking for another code.", seconds=wait)
        sent_today = db.session.scalar(
            select(func.count()).select_from(cls).where(cls.phone == phone, cls.created_at > now - timedelta(days=1))
        )
        if sent_today >= cls.MAX_PER_DAY:
            raise DomainError("Too many codes were sent to this number today. Try again tomorrow.")
        day = shanghai_day(now)
        day_start = shanghai_midnight(day)
        if requested_by is not None:
            numbers = set(db.session.scalars(
                select(cls.phone).distinct().where(cls.requested_by_id == requested_by.id, cls.created_at >= day_start)
            ))
            if phone not in numbers and len(numbers) >= cls.MAX_NUMBERS_PER_ACCOUNT:
                raise DomainError("Codes can go to at most %(limit)s different numbers per account each day. "
                                  "Use a number you already asked for today, or try again tomorrow.",
                                  limit=cls.MAX_NUMBERS_PER_ACCOUNT)
        site_today = db.session.scalar(select(func.count()).select_from(cls).where(cls.created_at >= day_start))
        if site_today >= daily_budget:
            raise DomainError("Today's verification texts have run out. Please try again tomorrow.")
        code = f"{secrets.randbelow(1_000_000):06d}"
        db.session.add(cls(phone=phone, purpose=purpose, code_hash=cls._hash(phone, code), expires_at=now + cls.TTL,
                           requested_by_id=requested_by.id if requested_by is not None else None, created_at=now))
        db.session.flush()
        if site_today + 1 == daily_budget:
            # Issuing is serialised, so exactly one request sees the budget reached: one alert a day.
            log.error("SMS daily budget reached: %s codes sent on %s (Asia/Shanghai); further codes are refused "
                      "until midnight there. Raise SMS_DAILY_BUDGET if this is real demand.", daily_budget, day)
        return code

    @staticmethod
    def _serialise_issuing() -> None:
        """Make concurrent issues take turns, so the counts above cannot be read stale by two at once.

        One site-wide lock rather than the member's row: the budget is shared by every account and
        by codes asked before signing in. Held until the request commits, right after the insert.
        On SQLite the caller's write transaction (BEGIN IMMEDIATE) does the same: a `@reads_first`
        view must call `begin_write()` before `issue()`.
        """
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(select(func.pg_advisory_xact_lock(SmsCode.ISSUE_LOCK)))

    @classmethod
    def resend_wait(cls, phone: str, now: datetime | None = None) -> int:
        """Seconds before `issue()` will send PHONE another code (0: now). The page's countdown
        starts from it; `issue()` enforces it."""
        now = now or utcnow()
        last = db.session.scalar(select(func.max(cls.created_at)).where(cls.phone == phone))
        if last is None:
            return 0
        left = (cls.RESEND_AFTER - (now - last)).total_seconds()
        return max(0, int(left) + (1 if left > int(left) else 0))

    @classmethod
    def live(cls, phone: str, purpose: str, now: datetime | None = None) -> bool:
        """Whether PHONE holds a code for PURPOSE that can still be typed (unused, unexpired, attempts left)."""
        now = now or utcnow()
        return db.session.scalar(
            select(func.count()).select_from(cls).where(
                cls.phone == phone, cls.purpose == purpose, cls.consumed_at.is_(None), cls.expires_at > now,
                cls.attempts < cls.MAX_ATTEMPTS)
        ) > 0

    @classmethod
    def consumed_with(cls, phone: str, purpose: str, nonce: str, now: datetime | None = None) -> bool:
        """Whether the form with NONCE already consumed a code of PHONE for PURPOSE (within TTL)."""
        now = now or utcnow()
        return db.session.scalar(
            select(func.count()).select_from(cls).where(
                cls.phone == phone, cls.purpose == purpose, cls.nonce == nonce, cls.consumed_at > now - cls.TTL)
        ) > 0

    @classmethod
    def check(cls, phone: str, code: str, purpose: str = "verify", now: datetime | None = None,
              nonce: str | None = None) -> None:
        """Consume the latest live code for PHONE if CODE matches, else raise DomainError."""
        now = now or utcnow()
        latest = db.session.scalar(
            select(cls)
            .where(cls.phone == phone, cls.purpose == purpose, cls.consumed_at.is_(None))
            .order_by(cls.created_at.desc())
            .limit(1)
            .with_for_update()
        )
        if latest is None or latest.expires_at <= now:
            raise DomainError("The code has expired. Ask for a new one.")
        if latest.attempts >= cls.MAX_ATTEMPTS:
            raise DomainError("Too many wrong attempts. Ask for a new code.")
        latest.attempts += 1
        if not hmac.compare_digest(latest.code_hash, cls._hash(phone, (code or "").strip())):
            db.session.flush()
            raise DomainError("The code is wrong. Check the SMS and try again.")
        latest.consumed_at = now
        latest.nonce = nonce
        db.session.flush()


# -- a member's mobile number: one number, one account ---------------------------------------

class PhoneNotVerified(DomainError):
    """Raised by what only a member with a verified number may do (`User.can_post`)."""


class PhoneTaken(DomainError):
    """The number is another account's login: it cannot be verified on this one."""


def check_phone_claim(member: User, number: str) -> None:
    """Before a code is sent: MEMBER may verify NUMBER unless it is another account's login or
    already verified on this account (a DomainError says which)."""
    owner = User.find_by_login(number)
    if owner is not None and owner.id != member.id:
        raise PhoneTaken(N_("This number belongs to another account."))
    if member.phone == number and member.phone_verified:
        raise DomainError(N_("This number is already verified."))


def verify_phone(member: User, number: str, code: str, now: datetime | None = None) -> None:
    """MEMBER proves NUMBER with the texted CODE: the code is consumed, the number becomes the
    account's, verified, and the member is told (flushes only).

    A wrong or spent code raises DomainError with the attempt counted (commit to keep the count).
    A number that became another account's meanwhile raises `PhoneTaken` after the code check:
    roll back, and the code stays usable."""
    SmsCode.check(number, code, now=now)
    owner = User.find_by_login(number)
    if owner is not None and owner.id != member.id:
        raise PhoneTaken(N_("This number belongs to another account."))
    member.phone = number
    member.phone_verified_at = now or utcnow()
    notify(member, "phone_verified", {"phone": mask_phone(number)})
    db.session.flush()


def create_phone_account(phone: str, *, consent_version: str, locale: str | None, device: str | None,
                         now: datetime | None = None) -> User:
    """An account for a number that just proved itself by SMS login: verified, no password yet,
    a generated nickname (never the number: nicknames are public). The caller checked consent."""
    now = now or utcnow()
    user = User(phone=phone, phone_verified_at=now, nickname=f"车友{secrets.randbelow(10**6):06d}",
                password_hash=User.NO_PASSWORD + secrets.token_hex(16), consent_version=consent_version,
                consent_at=now, locale=locale, signup_device=device, created_at=now)
    db.session.add(user)
    db.session.flush()
    return user


ROLE_LABELS = {"organizer": N_("Organizer"), "moderator": N_("Moderator"), "partner": N_("Partner staff"), "admin": N_("Administrator")}


def _scope_params(grant: RoleGrant) -> dict:
    if grant.community is not None:
        return {"scope": f" · {grant.community.name}"}
    if grant.partner is not None:
        return {"scope": f" · {grant.partner.name}"}
    return {"scope": ""}


def grant_role(user: User, role: str, community=None, partner=None, by=None) -> RoleGrant:
    """Grant a role, audited, and tell the member (a repeat grant changes nothing)."""
    existing = {g.id for g in user.grants}
    grant = user.grant(role, community=community, partner=partner, by=by)
    if grant.id not in existing:
        db.session.refresh(grant)
        audit(by, "role.grant", user, before=None, after={"role": role, "scope": grant.scope})
        notify(user, "role_granted", {"role": {"msgid": ROLE_LABELS[role]}, **_scope_params(grant)})
    return grant


def revoke_role(grant: RoleGrant, by=None) -> None:
    """Withdraw a role, audited, and tell the member."""
    user = grant.user
    params = {"role": {"msgid": ROLE_LABELS[grant.role]}, **_scope_params(grant)}
    audit(by, "role.revoke", user, before={"role": grant.role, "scope": grant.scope}, after=None)
    user.grants.remove(grant)
    db.session.flush()
    notify(user, "role_revoked", params)


@built_once
def _session_user_query():
    """The member of a session with their unread count and whether they hold any role (every page)."""
    holds = exists().where(RoleGrant.user_id == User.id)
    return (select(User).where(User.id == bindparam("user_id"))
            .options(with_expression(User.unread_total, Notification.unread_of(User)),
                     with_expression(User.holds_grants, holds)))
