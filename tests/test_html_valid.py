"""Valid HTML: the Nu Html Checker (npm `vnu-jar`, on Java 17) finds no error on a fixed list of
pages and htmx fragments, for every role. htmx's own `hx-*` attributes are the one exception:
the checker does not know them.

One checker run for every document (the JVM takes seconds to start). Fragments are checked
inside a minimal document, as the browser would parse them into the page.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from models import Campaign, Event, Registration, Reward, Story, User, Voucher, db

VNU = Path(__file__).resolve().parent.parent / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
HX = {"HX-Request": "true"}
SHELL = '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>fragment</title></head><body>{}</body></html>'
# Where the page puts a fragment that starts with a list item or a table row.
PARENTS = {"<li": "<ul>{}</ul>", "<tr": "<table><tbody>{}</tbody></table>"}


def in_a_document(fragment: str) -> str:
    start = fragment.lstrip()[:3]
    return SHELL.format(PARENTS.get(start, "{}").format(fragment))


def demo_world() -> dict:
    from demo import seed

    seed()
    db.session.commit()
    member = User.find_by_login("13800000001")
    organizer = User.find_by_login("organizer@cheyou.example")
    story = db.session.scalar(select(Story).where(Story.status == "published").order_by(Story.id))
    ticket = db.session.scalar(select(Registration).where(Registration.user_id == member.id,
                                                          Registration.state == "confirmed"))
    return {
        "story": story.id,
        "event": db.session.scalar(select(Event.id).where(Event.status == "published").order_by(Event.starts_at.desc())),
        "ticket": ticket.ticket_token, "ticket_event": ticket.event_id,
        "voucher": db.session.scalar(select(Voucher.code).where(Voucher.user_id == member.id).order_by(Voucher.id)),
        "reward": db.session.scalar(select(Reward.id).where(Reward.active.is_(True)).order_by(Reward.id)),
        "organized": db.session.scalar(select(Event.id).where(Event.organizer_id == organizer.id).order_by(Event.id)),
        "member": member.id,
        "campaign": db.session.scalar(select(Campaign.id).order_by(Campaign.id)),
    }


def documents_by_role(w: dict) -> dict[str | None, list[tuple[str, bool]]]:
    """(path, as an htmx fragment?) for each role's login (None: a visitor)."""
    page = lambda *paths: [(p, False) for p in paths]  # noqa: E731
    fragment = lambda *paths: [(p, True) for p in paths]  # noqa: E731
    return {
        None: page("/", "/communities", "/c/ev", f"/stories/{w['story']}", "/stories/search?q=电池", "/events",
                   f"/events/{w['event']}", "/rewards", f"/rewards/{w['reward']}", "/auth/login", "/auth/login/sms", "/auth/forgot", "/auth/signup",
                   "/privacy", "/offline", "/nowhere")
              + fragment("/events?community=ev", "/stories/search?q=电池"),
        "13800000001": page("/", "/c/women", f"/stories/{w['story']}", f"/stories/by/{w['member']}", "/stories/new",
                            f"/events/{w['ticket_event']}", "/me", "/me/points", "/me/vouchers",
                            f"/me/vouchers/{w['voucher']}", "/me/tickets", f"/events/t/{w['ticket']}",
                            "/me/notifications", f"/rewards/{w['reward']}", "/auth/phone", "/auth/password",
                            "/me/garage", "/me/garage/new", "/me/garage/new?q=比亚", "/me/privacy")
                       + fragment("/me/notifications?before=1000000", "/me/points?before=1000000", "/me/unread-badge",
                                  "/me/garage/new?q=byd"),
        "organizer@cheyou.example": page("/events/manage", "/events/new", f"/events/{w['organized']}/manage",
                                         f"/events/{w['organized']}/edit", f"/events/{w['organized']}/roster",
                                         f"/events/{w['organized']}/checkin"),
        "moderator@cheyou.example": page("/moderation", "/moderation/c/women"),
        "partner@cheyou.example": page("/partner", f"/partner/v/{w['voucher']}", "/partner/statement"),
        "admin@cheyou.example": page("/admin", "/admin/rewards", "/admin/rewards/new", "/admin/partners",
                                     "/admin/points", "/admin/vouchers", "/admin/words", "/admin/roles", "/admin/audit",
                                     "/admin/recalls", "/admin/recalls/new", "/admin/campaigns",
                                     "/admin/campaigns/new", f"/admin/campaigns/{w['campaign']}")
                                  + fragment("/admin/campaigns/audience?kind=winback&inactive_days=30",
                                             f"/admin/campaigns/{w['campaign']}/report"),
    }


def is_htmx_attribute_error(message: dict) -> bool:
    return "“hx-" in message.get("message", "")


def test_every_page_and_fragment_is_valid_html_for_every_role(app, tmp_path):
    if shutil.which("java") is None or not VNU.exists():
        message = "the HTML check needs Java 17 and node_modules/vnu-jar (bin/system-deps --test, then make)"
        if os.environ.get("CHEYOU_REQUIRE_BROWSER"):  # CI: a missing checker is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message)
    world = demo_world()
    files: dict[str, str] = {}
    for login, documents in documents_by_role(world).items():
        user = User.find_by_login(login) if login else None
        client = app.test_client(user=user) if user else app.test_client()
        for path, is_fragment in documents:
            response = client.get(path, headers=HX if is_fragment else {})
            assert response.status_code in (200, 404), f"{login or 'visitor'} {path}: {response.status_code}"
            html = response.get_data(as_text=True)
            name = tmp_path / f"doc{len(files):03d}.html"
            name.write_text(in_a_document(html) if is_fragment else html, encoding="utf-8")
            files[str(name)] = f"{login or 'visitor'} {path}{' (fragment)' if is_fragment else ''}"
    assert len(files) >= 50
    run = subprocess.run(["java", "-Xss16m", "-jar", str(VNU), "--errors-only", "--format", "json", *files],
                         capture_output=True, text=True, timeout=300)
    messages = json.loads(run.stderr or run.stdout)["messages"]
    errors = [m for m in messages if m.get("type") == "error" and not is_htmx_attribute_error(m)]
    by_message: dict[str, list[str]] = {}
    for m in errors:
        where = files.get(m.get("url", "").removeprefix("file:"), m.get("url", ""))
        by_message.setdefault(m["message"], []).append(f"{where} line {m.get('lastLine')}: {m.get('extract', '').strip()[:120]}")
    report = "\n".join(f"{message} ×{len(places)}\n    " + "\n    ".join(places[:4]) for message, places in
                       sorted(by_message.items(), key=lambda item: -len(item[1])))
    assert not errors, f"{len(errors)} HTML errors in {len(files)} documents:\n{report}"
