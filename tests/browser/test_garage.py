"""The garage on a 360 px phone: typing 比亚 lists BYD's series as one types (htmx, debounced),
picking one and saving adds the car, shown with its VIN masked and the recall that reaches it."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from models import db
from models.garage import Car, CarMake, CarSeries, vin_check_digit
from models.recalls import RecallInput, save_recall
from tests.browser.test_shell import log_in

pytestmark = pytest.mark.browser


def test_a_member_adds_a_car_with_the_type_ahead_on_a_small_phone(page, factories, console_errors):
    page.set_viewport_size({"width": 360, "height": 780})
    member = factories.user(login="13900001234")
    han = db.session.scalar(select(CarSeries).join(CarMake).where(CarMake.name == "比亚迪", CarSeries.name == "汉 EV"))
    save_recall(None, RecallInput(number="S2026-0123", make_id=han.make_id, series_id=han.id, year_from=2020,
                                  year_to=2022, defect="副车架螺栓可能松动。", remedy="免费重新紧固。",
                                  announced_on=date(2026, 11, 1)))
    db.session.commit()
    raw = "LGXCE4CB0M2012345"
    vin = raw[:8] + vin_check_digit(raw) + raw[9:]

    log_in(page, "13900001234")
    page.goto("/me/garage")
    page.get_by_role("link", name="添加车辆").click()
    page.wait_for_url("**/me/garage/new")
    # The typed-make fields stay hidden until "Not listed" is chosen.
    assert not page.locator("#other_make").is_visible()

    with page.expect_response(lambda r: "/me/garage/new?q=" in r.url and r.request.headers.get("hx-request")):
        page.locator("#q").press_sequentially("比亚", delay=50)
    option = page.get_by_label("比亚迪 汉 EV")
    option.check()
    assert page.locator("#series-results").get_by_text("比亚迪 海豚").is_visible()
    page.select_option("#model_year", "2021")
    page.fill("#mileage_km", "46000")
    page.fill("#vin", vin.lower())
    page.fill("#plate", "粤BD12345")
    save = page.get_by_role("button", name="加入我的车库")
    box = save.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 360.5  # no sideways scrolling on a small phone
    save.click()

    page.wait_for_url("**/me/garage")
    body = page.locator("main")
    assert body.get_by_role("heading", name="比亚迪 汉 EV").is_visible()
    assert body.get_by_text(vin[:3] + "*" * 10 + vin[-4:]).is_visible()
    assert vin not in page.content()
    assert body.get_by_text("安全召回 S2026-0123").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    db.session.rollback()
    assert db.session.scalar(select(Car.vin).where(Car.owner_id == member.id)) == vin

    # "Not listed" reveals the typed fields (CSS only: no script needed).
    page.goto("/me/garage/new")
    page.get_by_label("列表里没有，我自己填写").check()
    assert page.locator("#other_make").is_visible()
    assert console_errors == []
