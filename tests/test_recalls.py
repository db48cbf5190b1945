"""Safety recalls: entered by admins (audited), matched to garage cars by make, series, model
year and VIN range, shown on the car until the member marks them done."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from models import AuditEntry, DomainError, db
from models.garage import Car, CarInput, CarMake, CarSeries, save_car, vin_check_digit
from models.recalls import (Recall, RecallInput, cars_matching, mark_done, matching_count, open_recalls,
                            recall_audience, save_recall)


def series(make: str, name: str) -> CarSeries:
    return db.session.scalar(select(CarSeries).join(CarMake).where(CarMake.name == make, CarSeries.name == name))


def vin(serial: int, year_code: str = "M", body: str = "LGXCE4CB") -> str:
    """A Chinese VIN of one factory batch with SERIAL, its check digit computed."""
    raw = f"{body}0{year_code}2{serial:06d}"
    return raw[:8] + vin_check_digit(raw) + raw[9:]


def car(owner, make="比亚迪", name="汉 EV", year=2021, vin_=""):
    saved, _warning = save_car(owner, CarInput(series_id=series(make, name).id, model_year=year, vin=vin_))
    return saved


def recall(admin=None, number="S2026-0123", make="比亚迪", name="汉 EV", **ranges) -> Recall:
    make_id = db.session.scalar(select(CarMake.id).where(CarMake.name == make))
    entered = save_recall(admin, RecallInput(
        number=number, make_id=make_id, series_id=series(make, name).id if name else None,
        defect="前副车架螺栓拧紧力矩不足。", remedy="免费重新紧固。", announced_on=date(2026, 11, 1), **ranges))
    db.session.commit()
    return entered


def reached(r: Recall) -> set[int]:
    return {c.id for c in db.session.scalars(cars_matching(r))}


def test_a_year_range_reaches_cars_of_that_series_and_those_years_only(factories):
    a, b = factories.user(), factories.user()
    inside, edge, too_old = car(a, year=2021), car(a, year=2022), car(b, year=2019)
    other_series, other_make = car(b, name="海豚", year=2021), car(b, make="大众", name="朗逸", year=2021)
    r = recall(year_from=2020, year_to=2022)
    assert reached(r) == {inside.id, edge.id}
    assert set(db.session.scalars(recall_audience(r))) == {a.id}
    whole_make = recall(number="S2026-0124", name=None, year_from=2021, year_to=2021)
    assert reached(whole_make) == {inside.id, other_series.id}
    assert other_make.id not in reached(whole_make) and too_old.id not in reached(r)


def test_a_vin_range_reaches_the_cars_whose_vin_is_in_it_whatever_their_check_digit(factories):
    owner = factories.user()
    first, middle, last, after = (car(owner, vin_=vin(n)) for n in (100, 250, 400, 401))
    without_vin = car(owner)
    r = recall(vin_from=vin(100), vin_to=vin(400))
    assert reached(r) == {first.id, middle.id, last.id}
    assert after.id not in reached(r) and without_vin.id not in reached(r)
    # With a year range as well, a car without a VIN is reached through its year (and told to add its VIN).
    both = recall(number="S2026-0125", vin_from=vin(100), vin_to=vin(400), year_from=2021, year_to=2021)
    assert reached(both) == {first.id, middle.id, last.id, without_vin.id}


def test_marking_done_hides_the_recall_on_that_car_only(factories, login_as):
    owner = factories.user()
    han, han_2 = car(owner, year=2021), car(owner, year=2022)
    db.session.commit()
    r = recall(year_from=2020, year_to=2022)
    client = login_as(owner)
    page = client.get("/me/garage").get_data(as_text=True)
    assert page.count("安全召回 S2026-0123") == 2 and "前副车架螺栓" in page
    response = client.post(f"/me/garage/{han.id}/recalls/{r.id}/done")
    assert response.status_code == 302
    assert client.post(f"/me/garage/{han.id}/recalls/{r.id}/done").status_code == 302  # a double tap is harmless
    assert open_recalls([han, han_2]) == {han.id: [], han_2.id: [r]}
    assert reached(r) == {han_2.id}
    assert {c.id for c in db.session.scalars(cars_matching(r, include_done=True))} == {han.id, han_2.id}
    page = client.get("/me/garage").get_data(as_text=True)
    assert page.count("安全召回 S2026-0123") == 1
    mark_done(han_2, r)
    db.session.commit()
    assert list(db.session.scalars(recall_audience(r))) == [] and matching_count(r) == 0


def test_a_recall_that_does_not_reach_the_car_cannot_be_marked_on_it(factories, login_as):
    owner = factories.user()
    langyi = car(owner, make="大众", name="朗逸")
    db.session.commit()
    r = recall(year_from=2020, year_to=2022)
    assert login_as(owner).post(f"/me/garage/{langyi.id}/recalls/{r.id}/done").status_code == 404


def test_a_no_vin_car_is_told_to_add_its_vin(factories, login_as):
    owner = factories.user()
    car(owner, year=2021)
    db.session.commit()
    recall(vin_from=vin(100), vin_to=vin(400), year_from=2021, year_to=2021)
    assert "填写你的车架号即可确认" in login_as(owner).get("/me/garage").get_data(as_text=True)


@pytest.mark.parametrize("ranges, field", [
    ({}, "year_from"),
    ({"year_from": 2023, "year_to": 2020}, "year_to"),
    ({"vin_from": vin(100)}, "vin_to"),
    ({"vin_from": vin(400), "vin_to": vin(100)}, "vin_to"),
    ({"vin_from": vin(100)[:8] + "X" + vin(100)[9:], "vin_to": vin(400)}, "vin_from"),
])
def test_bad_ranges_are_refused(ranges, field):
    with pytest.raises(DomainError) as refused:
        recall(**ranges)
    assert refused.value.field == field


def test_admins_enter_and_correct_recalls_audited(factories, login_as):
    admin = factories.user(role="admin")
    owner = factories.user()
    car(owner, year=2021)
    db.session.commit()
    client = login_as(admin)
    han = series("比亚迪", "汉 EV")
    data = {"number": "s2026-0123", "make": str(han.make_id), "series": str(han.id), "year_from": "2020",
            "year_to": "2022", "vin_from": "", "vin_to": "", "defect": "副车架螺栓松动。", "remedy": "重新紧固。",
            "announced_on": "2026-11-01", "starts_on": "2026-11-10"}
    response = client.post("/admin/recalls/new", data=data)
    assert response.status_code == 302
    saved = db.session.scalar(select(Recall))
    assert saved.number == "S2026-0123" and saved.series_id == han.id
    listing = client.get("/admin/recalls").get_data(as_text=True)
    assert "S2026-0123" in listing and "涉及 1 辆尚未维修的车" in listing
    again = client.post("/admin/recalls/new", data=data)
    assert again.status_code == 422 and "已录入" in again.get_data(as_text=True)
    response = client.post(f"/admin/recalls/{saved.id}/edit", data={**data, "year_from": "2022"})
    assert response.status_code == 302
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.target_type == "recalls")
                                 .order_by(AuditEntry.id)).all()
    assert [e.action for e in entries] == ["recall.create", "recall.update"]
    assert entries[1].before["year_from"] == 2020 and entries[1].after["year_from"] == 2022
    assert entries[1].actor_id == admin.id
    assert matching_count(db.session.get(Recall, saved.id)) == 0  # the 2021 car is no longer in range


def test_the_admin_form_refuses_what_a_rule_refuses(factories, login_as):
    client = login_as(factories.user(role="admin"))
    han = series("比亚迪", "汉 EV")
    response = client.post("/admin/recalls/new", data={
        "number": "召回一号", "make": str(han.make_id), "series": "", "year_from": "2020", "year_to": "2022",
        "defect": "x", "remedy": "y", "announced_on": "2026-11-01"})
    assert response.status_code == 422 and "S2026-0123" in response.get_data(as_text=True)
    wrong_series = client.post("/admin/recalls/new", data={
        "number": "S2026-0001", "make": str(series("大众", "朗逸").make_id), "series": str(han.id),
        "year_from": "2020", "defect": "x", "remedy": "y", "announced_on": "2026-11-01"})
    assert wrong_series.status_code == 422
    assert db.session.scalar(select(Recall)) is None


@pytest.mark.parametrize("path", ["/admin/recalls", "/admin/recalls/new"])
def test_only_admins_open_the_recall_pages(factories, login_as, client, path):
    assert login_as(factories.user()).get(path).status_code == 403
    assert login_as(factories.user(role="moderator")).get(path).status_code == 403
    assert client.get(path).status_code == 302
    assert login_as(factories.user(role="admin")).get(path).status_code == 200


def test_cars_typed_by_hand_with_an_unlisted_make_are_never_reached(factories):
    owner = factories.user()
    typed, _ = save_car(owner, CarInput(other=True, other_make="阿维塔", other_series="11", energy="bev",
                                        model_year=2021))
    r = recall(name=None, year_from=2000, year_to=2030)
    assert typed.id not in reached(r)
    assert db.session.get(Car, typed.id).make_id is None
