"""axe-core on a fixed list of pages, every page type and every role, on a 360 px phone:
no serious or critical violation.

axe-core comes from npm (a dev dependency, never served to members). Our CSP forbids
injecting a script tag, so its source is evaluated through the DevTools protocol
(Playwright's `evaluate`), which a page's CSP does not govern.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from models import Campaign, Event, Registration, Reward, Story, User, Voucher, db

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
NARROW = {"width": 360, "height": 780}
SERIOUS = ("serious", "critical")


def axe_violations(page) -> list[dict]:
    """Run axe-core on the page as it is now; the serious and critical violations."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                          targets: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' :: ' + n.failureSummary.split('\\n').slice(1, 2).join(''))}));
        }"""
    )
    return [v for v in result if v["impact"] in SERIOUS]


def demo_world():
    """The demo seed: every role, stories, events, rewards, vouchers and tickets."""
    from demo import seed

    seed()
    db.session.commit()
    story = db.session.scalar(select(Story).where(Story.status == "published").order_by(Story.id))
    event = db.session.scalar(select(Event).where(Event.status == "published").order_by(Event.starts_at.desc()))
    member = User.find_by_login("13800000001")
    ticket = db.session.scalar(select(Registration).where(Registration.user_id == member.id,
                                                          Registration.state == "confirmed"))
    voucher = db.session.scalar(select(Voucher).where(Voucher.user_id == member.id).order_by(Voucher.id))
    reward = db.session.scalar(select(Reward).where(Reward.active.is_(True)).order_by(Reward.id))
    organized = db.session.scalar(select(Event).join(User, Event.organizer_id == User.id)
                                  .where(User.email == "organizer@cheyou.example").order_by(Event.id))
    return {"story": story.id, "event": event.id, "ticket": ticket.ticket_token, "ticket_event": ticket.event_id,
            "voucher": voucher.code, "reward": reward.id, "organized": organized.id, "member": member.id,
            "campaign": db.session.scalar(select(Campaign.id).order_by(Campaign.id))}


def pages_by_role(w: dict) -> dict[str | None, list[str]]:
    return {
        None: ["/", "/communities", "/c/ev", f"/stories/{w['story']}", "/stories/search?q=电池", "/events",
               f"/events/{w['event']}", "/rewards", f"/rewards/{w['reward']}", "/auth/login", "/auth/login/sms", "/auth/forgot", "/auth/signup",
               "/privacy", "/offline"],
        "13800000001": ["/", "/c/women", f"/stories/{w['story']}", f"/stories/by/{w['member']}", "/stories/new",
                        f"/events/{w['ticket_event']}", "/me", "/me/points", "/me/vouchers",
                        f"/me/vouchers/{w['voucher']}", "/me/tickets", f"/events/t/{w['ticket']}",
                        "/me/notifications", f"/rewards/{w['reward']}", "/auth/phone", "/auth/password",
                        "/me/garage", "/me/garage/new?q=比亚"],
        "organizer@cheyou.example": ["/events/manage", "/events/new", f"/events/{w['organized']}/manage",
                                     f"/events/{w['organized']}/edit", f"/events/{w['organized']}/roster",
                                     f"/events/{w['organized']}/checkin"],
        "moderator@cheyou.example": ["/moderation", "/moderation/c/women"],
        "partner@cheyou.example": ["/partner", f"/partner/v/{w['voucher']}", "/partner/statement"],
        "admin@cheyou.example": ["/admin", "/admin/rewards", "/admin/rewards/new", "/admin/partners",
                                 "/admin/points", "/admin/vouchers", "/admin/words", "/admin/roles", "/admin/audit",
                                 "/admin/recalls", "/admin/recalls/new", "/admin/campaigns", "/admin/campaigns/new",
                                 f"/admin/campaigns/{w['campaign']}"],
    }


def test_no_serious_accessibility_violation_on_any_page_for_any_role(browser, live_server, csrf_on, app):
    from demo import DEMO_PASSWORD

    world = demo_world()
    found: dict[str, list[str]] = {}
    checked = 0
    for login, paths in pages_by_role(world).items():
        context = browser.new_context(base_url=live_server, viewport=NARROW, device_scale_factor=2, is_mobile=True,
                                      has_touch=True, locale="zh-CN", timezone_id="Asia/Shanghai")
        context.set_default_timeout(15_000)
        page = context.new_page()
        try:
            if login:
                page.goto("/auth/login")
                page.fill("input[name=login]", login)
                page.fill("input[name=password]", DEMO_PASSWORD)
                page.click("main form button[type=submit]")
                page.wait_for_url(lambda url: "/auth/login" not in url)
            for path in paths:
                response = page.goto(path)
                assert response is not None and response.status == 200, f"{login or 'visitor'} {path}: {response and response.status}"
                checked += 1
                for violation in axe_violations(page):
                    found.setdefault(f"{violation['id']} ({violation['impact']}): {violation['help']}", []).append(
                        f"{login or 'visitor'} {path}: {'; '.join(violation['targets'])}")
        finally:
            context.close()
    assert checked >= 30
    report = "\n".join(f"{rule}\n    " + "\n    ".join(places[:6]) + (f"\n    … {len(places) - 6} more" if len(places) > 6 else "")
                       for rule, places in sorted(found.items()))
    assert not found, f"axe-core found serious or critical violations on {checked} pages:\n{report}"
