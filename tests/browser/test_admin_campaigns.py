"""The campaign form on a 360 px phone: the audience count under the builder follows the filters
as the admin changes them (htmx, no reload), a reversed range says why instead of counting, the
draft saves, and no script error or CSP violation shows in the console."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models import db
from models.campaigns import Campaign
from tests.browser.test_shell import log_in
from tests.test_admin_campaigns import member

pytestmark = pytest.mark.browser


def live_count(page) -> str:
    return page.locator("#audience-live [data-audience-count]").get_attribute("data-audience-count")


def refreshed(page):
    """Wait for the next live-count answer (an htmx request to the audience fragment)."""
    return page.expect_response(lambda r: "/admin/campaigns/audience?" in r.url and r.request.headers.get("hx-request"))


@pytest.mark.parametrize("width", [360, 412])
def test_the_audience_count_follows_the_filters_live_on_a_small_phone(page, factories, console_errors, width):
    page.set_viewport_size({"width": width, "height": 780})
    factories.user(login="13900002222", role="admin", verified=True)
    for level in (1, 2, 3, 5):
        member(factories, level=level, idle_days=40)
    member(factories, level=3, idle_days=2)  # came by recently

    log_in(page, "13900002222")
    page.goto("/admin/campaigns/new")
    # A new win-back starts at "inactive for 30 days": the four lapsed members, counted on the server.
    assert live_count(page) == "4"
    assert page.locator("#audience-live").get_attribute("aria-live") == "polite"

    with refreshed(page):
        page.select_option("#level_min", "3")
    page.wait_for_function("() => document.querySelector('#audience-live [data-audience-count]')?.dataset.audienceCount === '2'")
    assert page.locator("#audience-live").get_by_text("2 位会员符合").is_visible()

    with refreshed(page):  # typing a number refreshes too (debounced)
        page.locator("#inactive_days").fill("")
        page.locator("#inactive_days").press_sequentially("1", delay=30)
    page.wait_for_function("() => document.querySelector('#audience-live [data-audience-count]')?.dataset.audienceCount === '3'")

    with refreshed(page):  # a reversed range: the reason, no count
        page.select_option("#level_max", "2")
    refusal = page.locator("#audience-live [data-audience-refusal]")
    refusal.wait_for()
    assert "Lv.3" in refusal.inner_text() and page.locator("#audience-live [data-audience-count]").count() == 0

    with refreshed(page):
        page.select_option("#level_max", "")
    page.wait_for_function("() => document.querySelector('#audience-live [data-audience-count]')?.dataset.audienceCount === '3'")
    # The masked sample: no full mobile number anywhere on the page.
    assert page.locator("#audience-live table tbody tr").count() == 3
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling on a small phone"
    page.screenshot(path=f"/tmp/cheyou-admin-campaign-form-{width}.png", full_page=True)

    page.fill("#title", "好久不见")
    page.fill("#body", "回来看看车友们的新故事。")
    save = page.get_by_role("button", name="存为草稿")
    save.click()
    page.wait_for_url("**/admin/campaigns/*")
    page.screenshot(path=f"/tmp/cheyou-admin-campaign-{width}.png", full_page=True)
    assert page.locator("#audience-live [data-audience-count]").get_attribute("data-audience-count") == "3"
    db.session.rollback()
    saved = db.session.scalar(select(Campaign))
    assert saved.audience == {"inactive_days": 1, "level_min": 3}
    assert console_errors == []
