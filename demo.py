"""Demo content for `flask --app app seed-demo`: communities, members, roles, partners, rewards,
events, and some seventy stories with photos, likes and comments (demo_stories.py).

Idempotent: it looks for the demo admin first and does nothing when it exists.
"""
from __future__ import annotations

import random
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from models import Community, DomainError, Partner, Store, User, db, notify
from models.accounts import grant_role
from models.engagement import StoryLike
from models.activity import backfill
from models.loyalty import recache_standings
from models.types import utcnow

DEMO_PASSWORD = "cheyou2026"

# (login, nickname, role, scope)
DEMO_ACCOUNTS = [
    ("13800000001", "小周爱开车", None, None),
    ("organizer@cheyou.example", "老陈组局", "organizer", ["ev", "modding"]),
    ("moderator@cheyou.example", "版主阿敏", "moderator", ["women", "newcomers"]),
    ("partner@cheyou.example", "安心养车店长", "partner", "安心养车"),
    ("admin@cheyou.example", "车友圈运营", "admin", None),
]

COMMUNITIES = [
    {
        "slug": "ev", "theme": "green", "position": 1,
        "name": "新能源车主", "name_en": "EV Owners",
        "tagline": "电池健康、充电桩、冬季续航", "tagline_en": "Battery health, charging, winter range",
        "description": "二手电车怎么看电池？哪里充电便宜？冬天掉电多少？这里的车主都踩过坑，也愿意分享。",
        "description_en": "How to check a used EV's battery, where charging is cheap, how much range winter costs: owners who learned the hard way share it here.",
    },
    {
        "slug": "women", "theme": "rose", "position": 2,
        "name": "她车社", "name_en": "Women Drivers",
        "tagline": "安全、保养、一个人也能搞定", "tagline_en": "Safety, care, and doing it yourself",
        "description": "女性车主的互助圈：夜间行车安全、保养不被坑、停车技巧，也有周末自驾约伴。",
        "description_en": "A circle for women drivers: safety at night, maintenance without being overcharged, parking tips, weekend road-trip buddies.",
    },
    {
        "slug": "modding", "theme": "orange", "position": 3,
        "name": "改装部落", "name_en": "Modding Tribe",
        "tagline": "合规改装、零件、作业分享", "tagline_en": "Legal mods, parts, build logs",
        "description": "轮毂、避震、音响、贴膜……合规改装交流，作业分享，靠谱店铺推荐。",
        "description_en": "Wheels, suspension, audio, wraps: legal modding, build logs and trusted shops.",
    },
    {
        "slug": "newcomers", "theme": "blue", "position": 4,
        "name": "新手车友帮", "name_en": "Newcomers' Club",
        "tagline": "第一辆车、避坑指南、提车作业", "tagline_en": "First car, avoiding traps, pickup day",
        "description": "买第一辆二手车？看车、验车、过户、保险，一步步带你避坑，有问必答。",
        "description_en": "Buying your first used car? Viewing, inspection, transfer and insurance, step by step, with every question answered.",
    },
]

NICKNAMES = [
    "深圳小电驴", "杭州老司机", "成都火锅车主", "北京胡同飞驰", "上海梧桐下", "广州早茶党", "武汉热干面",
    "西安肉夹馍", "南京鸭血粉丝", "重庆山城车神", "苏州园林慢行", "长沙夜猫子", "青岛啤酒自驾", "厦门海风",
    "昆明春城", "天津相声迷", "郑州胡辣汤", "合肥科学岛", "济南泉水", "福州茉莉", "宁波港口", "无锡太湖",
    "佛山功夫", "东莞打工人", "大连海鲜", "沈阳大帅", "哈尔滨冰城", "贵阳爽爽", "南宁老友", "海口椰风",
    "兰州拉面", "太原面食", "石家庄正定", "南昌瓦罐", "呼和浩特草原", "乌鲁木齐烤串", "拉萨阳光", "银川塞上",
    "西宁高原", "珠海情侣路",
]

PARTNERS = [
    ("安心养车", "maintenance", [("徐汇店", "上海", "上海市徐汇区漕溪北路 88 号"), ("浦东店", "上海", "上海市浦东新区张杨路 500 号")]),
    ("闪亮洗车", "wash", [("南山店", "深圳", "深圳市南山区科技园南路 12 号")]),
    ("安检通检测站", "inspection", [("朝阳站", "北京", "北京市朝阳区东四环中路 39 号")]),
]


def ensure_communities() -> dict[str, Community]:
    """Create the four verticals when missing; leave admins' edits alone."""
    existing = {c.slug: c for c in db.session.scalars(select(Community))}
    for data in COMMUNITIES:
        if data["slug"] not in existing:
            community = Community(**data)
            db.session.add(community)
            existing[data["slug"]] = community
    db.session.flush()
    return existing


def seed() -> bool:
    """Create the demo content; returns False when it is already there."""
    if User.find_by_login(DEMO_ACCOUNTS[-1][0]) is not None:
        return False
    rng = random.Random(2026)
    communities = ensure_communities()
    partners = {}
    for name, kind, stores in PARTNERS:
        partner = Partner.get_or_create(name)
        partner.kind = kind
        for store_name, city, address in stores:
            if not any(s.name == store_name for s in partner.stores):
                partner.stores.append(Store(name=store_name, city=city, address=address))
        partners[name] = partner
    db.session.flush()

    version = current_app.config["PRIVACY_POLICY_VERSION"]
    now = utcnow()
    password_user = User(nickname="tmp", email="tmp@invalid", consent_version=version)
    password_user.set_password(DEMO_PASSWORD)
    password_hash = password_user.password_hash  # one slow hash for every demo account

    def make_user(login, nickname, days_ago):
        kind = "email" if "@" in login else "phone"
        user = User(
            nickname=nickname,
            password_hash=password_hash,
            consent_version=version,
            consent_at=now - timedelta(days=days_ago),
            created_at=now - timedelta(days=days_ago),
            phone_verified_at=(now - timedelta(days=days_ago)) if kind == "phone" else None,
            **{kind: login},
        )
        db.session.add(user)
        return user

    staff = []
    for login, nickname, role, scope in DEMO_ACCOUNTS:
        user = make_user(login, nickname, days_ago=rng.randint(30, 200))
        db.session.flush()
        if role in ("organizer", "moderator"):
            for slug in scope:
                grant_role(user, role, community=communities[slug])
        elif role == "partner":
            grant_role(user, role, partner=partners[scope])
        elif role == "admin":
            grant_role(user, role)
        staff.append(user)

    members = []
    for i, nickname in enumerate(NICKNAMES):
        user = make_user(f"139{i + 10:08d}", nickname, days_ago=rng.randint(1, 360))
        members.append(user)
    db.session.flush()

    slugs = list(communities)
    for user in staff + members:
        for slug in rng.sample(slugs, rng.randint(1, 3)):
            communities[slug].join(user)
    for user in staff:
        notify(user, "welcome", {"nickname": user.nickname}, link="/communities", dedupe_key="welcome")
    db.session.flush()
    seed_loyalty(rng, staff, members, partners, communities)
    seed_stories(rng, staff + members, communities)
    seed_events(rng, staff, members, communities)
    seed_garage(rng, staff, members)
    backfill()  # their active days, from all of the above: win-back audiences and DAU/MAU have history
    seed_campaigns(rng, staff, members)
    # The history was posted at past moments: every cached standing is rebuilt as of now, so the
    # first pages read it instead of deriving it.
    recache_standings()
    db.session.commit()
    return True


# (community, kind, title, place, address, days from now, capacity, companions, price, safety notice)
EVENTS = [
    ("ev", "meetup", "冬季续航交流会 · 电池健康免费检测", "滨江超充站", "上海市浦东新区滨江大道 2727 号", 6, 30, 1, 0, ""),
    ("ev", "road_trip", "电车自驾千岛湖 · 两天一夜", "千岛湖服务区集合", "浙江省杭州市淳安县千岛湖镇", 16, 12, 1, 200,
     "全程高速限速 110，车距 100 米以上；出发前电量不低于 90%；服从领队安排，不得擅自超车离队。"),
    ("women", "meetup", "她车社 · 新手保养小课堂", "安心养车（徐汇店）", "上海市徐汇区龙华中路 600 号", 9, 15, 0, 0, ""),
    ("modding", "workshop", "改装体验营：轮毂与避震", "锐改工坊", "上海市嘉定区安亭镇墨玉南路 888 号", 12, 8, 0, 100, ""),
    ("newcomers", "fair", "二手车购车节 · 避坑讲座 + 验车", "车友圈线下体验店", "上海市闵行区虹桥镇申虹路 88 号", 20, 80, 2, 0, ""),
]
PAST_EVENTS = [
    ("ev", "meetup", "夏日充电桩地图共建", "世博充电站", "上海市浦东新区世博大道 1500 号", -30, 20),
    ("women", "meetup", "夜间行车安全分享", "她车社活动室", "上海市静安区南京西路 1266 号", -14, 12),
    ("modding", "workshop", "排气改装合规讲解", "锐改工坊", "上海市嘉定区安亭镇墨玉南路 888 号", -21, 10),
    ("newcomers", "meetup", "第一次提车经验交流", "车友圈线下体验店", "上海市闵行区虹桥镇申虹路 88 号", -7, 20),
]


def seed_events(rng, staff, members, communities) -> None:
    """Upcoming events with signups (one full, with a waitlist) and past ones with attendance."""
    from datetime import datetime, time

    from models.events import (
        EventInput, SignupInput, check_in, complete_event, pay_attendances, publish_event, save_event, signup,
    )
    from models.types import SHANGHAI

    organizers = {"ev": staff[1], "modding": staff[1], "women": staff[4], "newcomers": staff[4]}
    now = utcnow()
    today = now.astimezone(SHANGHAI).date()

    def create(slug, kind, title, place, address, days, capacity, companions, price, notice, created):
        starts = datetime.combine(today + timedelta(days=days), time(14, 0), tzinfo=SHANGHAI)
        data = EventInput(
            community=communities[slug], kind=kind, title=title, place=place, address=address, map_url="",
            description=f"**{title}**\n\n- 集合地点：{place}\n- 欢迎新老车友参加，现场有茶歇。", starts_at=starts,
            ends_at=starts + timedelta(hours=3 if kind != "road_trip" else 30), capacity=capacity,
            companions_allowed=companions, signup_opens_at=created, signup_closes_at=starts - timedelta(hours=2),
            cancel_deadline=starts - timedelta(days=1), points_price=price, attendance_points=50,
            level_priority=True, safety_notice=notice,
        )
        event = save_event(organizers[slug], data, now=created)
        publish_event(event, organizers[slug], now=created)
        return event

    def plate():
        return "沪" + rng.choice("ABCDEFG") + "".join(rng.choice("0123456789") for _ in range(5))

    details = dict(accept_safety=True, emergency_name="家人", emergency_phone="13900000000")
    demo_member = staff[0]
    for n, (slug, kind, title, place, address, days, capacity, companions, price, notice) in enumerate(EVENTS):
        event = create(slug, kind, title, place, address, days, capacity, companions, price, notice,
                       now - timedelta(days=3))
        # The modding workshop fills up, so its page shows a waitlist.
        crowd = capacity + 3 if kind == "workshop" else rng.randint(capacity // 3, capacity // 2)
        people = ([demo_member] if n in (0, 3) else []) + rng.sample(members, crowd)
        for i, member in enumerate(people):
            when = now - timedelta(days=2, hours=-i)
            try:
                signup(event, member, SignupInput(companions=rng.randint(0, companions), plate=plate(), **details),
                       now=when)
            except DomainError:
                continue  # not enough points for a paid event: that member simply is not signed up
    for slug, kind, title, place, address, days, capacity in PAST_EVENTS:
        event = create(slug, kind, title, place, address, days, capacity, 1, 0, "", now + timedelta(days=days - 10))
        people = [demo_member] + rng.sample(members, capacity - 4)
        for i, member in enumerate(people):
            signup(event, member, SignupInput(), now=event.signup_opens_at + timedelta(hours=i + 1))
        for i, reg in enumerate(event_roster(event)):
            if rng.random() < 0.8 or reg.user_id == demo_member.id:
                check_in(event, reg.code, organizers[slug], scanned_at=event.starts_at + timedelta(minutes=i))
        closed = event.ends_at + timedelta(hours=1)
        complete_event(event, organizers[slug], now=closed)
        pay_attendances(event, now=closed)  # dated with the event (the queued payout then finds it paid)


def event_roster(event):
    from models.events import roster

    return [r for r in roster(event) if r.state == "confirmed"]


STORIES = {
    "ev": [
        ("三年 6 万公里的二手电车，电池还剩多少？", "买的时候 SOH 92%，现在 **89%**。\n\n- 每月一次慢充到 100% 校准\n- 夏天尽量地库停车\n\n冬天续航掉两成左右，心里有数就不慌。", ["tips"]),
        ("看车时怎么查电池健康？", "卖家说电池没问题，我该看哪些数据？有没有靠谱的检测店推荐？", ["question"]),
    ],
    "women": [
        ("一个人去 4S 店保养不被坑的 5 个办法", "1. 先查保养手册\n2. 只做手册上的项目\n3. 旧件要回来看\n\n姐妹们有补充的欢迎留言～", ["traps", "tips"]),
        ("夜里高速爆胎，我是怎么处理的", "双闪、靠右、放三角牌、人到护栏外。**先保证人安全**，车坏了可以修。", ["tips"]),
    ],
    "modding": [
        ("原厂轮毂换 18 寸，年检过了", "选的是同 ET 值的锻造轮毂，轮胎外径差控制在 2% 内，年检一次过。附作业图。", ["build"]),
    ],
    "newcomers": [
        ("第一次买二手车，我踩过的坑", "- 没查出险记录\n- 只看了里程表\n- 合同没写清楚过户时间\n\n后来才知道要查 **维保记录**。", ["purchase", "traps"]),
        ("5 万预算买什么代步车好？", "通勤 30 公里，偶尔回老家，求推荐！", ["question"]),
    ],
}


def seed_stories(rng, people, communities) -> None:
    """Stories in every community (the few above and demo_stories.py's library), most with
    photos drawn by Pillow and stored through the upload pipeline, published over the last five
    weeks, with likes, comments and replies: feeds scroll past their first page."""
    from demo_stories import COMMENTS, STORY_LIBRARY, demo_photo
    from models.stories import NewPhoto, StoryInput, save_story
    from services.images import process_upload, store_photo
    from services.storage import get_storage

    storage = get_storage(current_app)
    writers = [u for u in people if u.phone_verified]
    entries = [(slug, title, body, tags, ["车友实拍"] if rng.random() < 0.6 else [])
               for slug, stories in STORIES.items() for title, body, tags in stories]
    entries += [(slug, *story) for slug, stories in STORY_LIBRARY.items() for story in stories]
    now = utcnow()
    # Spread over 35 days, the newest an hour ago; created in time order, so ids follow dates.
    ages = sorted((rng.randint(60, 35 * 24 * 60) for _ in entries), reverse=True)
    rng.shuffle(entries)
    for (slug, title, body, tags, captions), minutes in zip(entries, ages):
        author = rng.choice(writers)
        photos = []
        for caption in captions:
            processed = process_upload(demo_photo(rng, slug, caption))
            full, thumb = store_photo(processed, storage, prefix="demo")
            photos.append(NewPhoto(full, thumb, processed.width, processed.height))
        story = save_story(author, StoryInput(communities[slug], title, body, tags), publish=True,
                           new_photos=photos)
        story.published_at = story.created_at = now - timedelta(minutes=minutes)
        _engage(rng, story, writers, COMMENTS[slug], now)


def _engage(rng, story, people, comments, now) -> None:
    """Likes and a few comments (with a reply) so a story page looks lived in; comments are
    dated between the story's publication and now."""
    from models.engagement import add_comment, like

    for member in rng.sample(people, rng.randint(2, min(12, len(people)))):
        like(story, member)
    first = None
    span = max(1, int((now - story.published_at).total_seconds() // 60))
    made = []
    for member in rng.sample(people, rng.randint(0, 4)):
        comment = add_comment(story, member, rng.choice(comments))
        made.append(comment)
        first = first or comment
    if first is not None and story.author_id != first.author_id:
        made.append(add_comment(story, story.author, "谢谢！有问题随时问我。", parent_id=first.id))
    for comment, minutes in zip(made, sorted(rng.randint(5, span) for _ in made)):
        comment.created_at = story.published_at + timedelta(minutes=minutes)
    # Likes too (like() dates them now), from their own generator so the rest of the demo stays
    # as it was: members' active days (models/activity.py) are rebuilt from these dates.
    dates = random.Random(story.id)
    for liked in db.session.scalars(select(StoryLike).where(StoryLike.story_id == story.id)):
        liked.created_at = story.published_at + timedelta(minutes=dates.randint(1, span))


REWARDS = [
    # partner, kind, title, title_en, price, stock, min level, validity days, community slug
    ("闪亮洗车", "wash", "精致洗车一次", "One premium car wash", 200, 80, 1, 30, None),
    ("闪亮洗车", "wash", "内饰深度清洁", "Interior deep clean", 600, 20, 2, 60, "women"),
    ("安心养车", "maintenance", "小保养工时 8 折", "20% off minor service labour", 400, 50, 1, 90, None),
    ("安心养车", "maintenance", "电池健康检测 + 空调滤芯", "Battery health check + cabin filter", 800, 15, 3, 90, "ev"),
    ("安检通检测站", "inspection", "二手车 128 项检测", "128-point used-car inspection", 1200, 10, 3, 120, "newcomers"),
    ("安心养车", "modding", "改装件安装 9 折", "10% off fitting aftermarket parts", 500, 30, 2, 60, "modding"),
]


def seed_loyalty(rng, staff, members, partners, communities) -> None:
    """Rewards from the partners, and a year of points history so the 积分 tab looks alive."""
    from models.loyalty import Reward, award, check_in, redeem, use_voucher
    from models.nonces import new_nonce

    for partner_name, kind, title, title_en, price, stock, min_level, days, slug in REWARDS:
        db.session.add(Reward(
            partner_id=partners[partner_name].id, kind=kind, title=title, title_en=title_en, points_price=price,
            stock=stock, per_member_limit=2, monthly_limit=1, min_level=min_level, validity_days=days,
            community_id=communities[slug].id if slug else None,
            description="车友圈会员专享，凭券到店核销。", terms="每次限用一张，不与店内其他优惠同享；节假日正常使用。",
        ))
    db.session.flush()
    now = utcnow()
    rules = ["story_posted", "comment", "like_received", "event_attended", "story_featured", "confirmed_report"]
    for user in staff + members:
        ago = sorted((timedelta(days=rng.randint(1, 330), hours=rng.randint(0, 23))
                      for _ in range(rng.randint(5, 40))), reverse=True)
        for i, before in enumerate(ago):  # oldest first, as they would have happened
            award(user, rng.choice(rules), cause=("demo", f"{user.id}-{i}"), key=f"demo:{i}", now=now - before)
        for day in range(rng.randint(0, 9), 0, -1):
            check_in(user, now=now - timedelta(days=day))
    demo_member = staff[0]
    for i in range(8):  # featured stories: enough for two vouchers
        award(demo_member, "story_featured", cause=("demo", f"featured-{i}"), key=f"demo-featured:{i}",
              now=now - timedelta(days=40 + i * 7))
    wash = db.session.scalar(select(Reward).where(Reward.kind == "wash").order_by(Reward.id))
    used = redeem(demo_member, wash.id, new_nonce(), now=now - timedelta(days=20))
    partner_staff = staff[3]
    use_voucher(used.code, partners["闪亮洗车"].stores[0], _grant_staff(partner_staff, partners["闪亮洗车"]),
                now=now - timedelta(days=18))
    maintenance = db.session.scalar(select(Reward).where(Reward.kind == "maintenance").order_by(Reward.id))
    redeem(demo_member, maintenance.id, new_nonce(), now=now - timedelta(days=2))


def _grant_staff(user, partner):
    """The demo partner account also staffs the car wash, so its portal shows a redemption."""
    grant_role(user, "partner", partner=partner)
    return user


# --- the garage: a few cars, and one safety recall that reaches some of them ------------------

# (login of the owner, make, series, model year, mileage km, VIN (its check digit is computed), plate)
DEMO_CARS = [
    ("13800000001", "比亚迪", "汉 EV", 2021, 46000, "LGXCE4CB0M2012345", "粤BD12345"),
    ("13800000001", "大众", "朗逸", 2018, 98000, "", "粤B8K2Q1"),
    ("organizer@cheyou.example", "特斯拉", "Model 3", 2022, 31000, "LRW3E7EK0NC123456", ""),
]
# Other members' cars, picked at random from these series.
MEMBER_SERIES = [("比亚迪", "汉 EV"), ("比亚迪", "秦PLUS DM-i"), ("丰田", "卡罗拉"), ("本田", "雅阁"),
                 ("日产", "轩逸"), ("理想", "L7"), ("五菱", "宏光MINIEV"), ("吉利", "星越L")]


def seed_garage(rng, staff, members) -> None:
    """Cars in a few garages (BYD 汉 EVs among them) and recall S2026-0123, entered by the admin."""
    from models.garage import CarInput, CarMake, CarSeries, save_car, vin_check_digit
    from models.recalls import RecallInput, save_recall

    def series(make, name):
        return db.session.scalar(select(CarSeries).join(CarMake).where(CarMake.name == make, CarSeries.name == name))

    owners = {u.phone or u.email: u for u in staff}
    for login, make, name, year, km, vin, plate in DEMO_CARS:
        vin = vin[:8] + vin_check_digit(vin) + vin[9:] if vin else ""
        save_car(owners[login], CarInput(series_id=series(make, name).id, model_year=year, mileage_km=km, vin=vin,
                                         plate=plate))
    for member in rng.sample(members, 12):
        make, name = rng.choice(MEMBER_SERIES)
        save_car(member, CarInput(series_id=series(make, name).id, model_year=rng.randint(2018, 2024),
                                  mileage_km=rng.randrange(5000, 150000, 1000)))
    han = series("比亚迪", "汉 EV")
    today = utcnow().date()
    save_recall(staff[-1], RecallInput(
        number="S2026-0123", make_id=han.make_id, series_id=han.id, year_from=2020, year_to=2022,
        defect="部分车辆前副车架后安装点螺栓拧紧力矩不足，长期使用可能松动，极端情况下影响操控，存在安全隐患。",
        remedy="厂家将免费为召回范围内的车辆检查并按规定力矩重新紧固螺栓，必要时更换螺栓。",
        announced_on=today - timedelta(days=10), starts_on=today - timedelta(days=3)))


# --- campaigns: lapsed members, a finished win-back and a finished safety recall ---------------

# (nickname, days since last active, marketing opt-in, verified mobile number, model year of a
# BYD 汉 EV in the garage: recall S2026-0123 reaches 2020–2022, consent or not)
LAPSED = [
    ("青岛老张", 38, True, True, 2021), ("杭州小美", 41, True, True, None), ("开滴滴的王师傅", 45, True, True, 2020),
    ("周末钓鱼佬", 52, True, False, None), ("宝妈小林", 57, True, True, None), ("佛系车主", 63, True, False, 2022),
    ("老司机阿强", 70, True, True, None), ("跑长途的李哥", 76, True, True, 2019), ("电车新手小陈", 84, True, False, None),
    ("山城摩旅", 89, True, True, None), ("不爱说话的车友", 36, False, True, 2022), ("沉默的观众", 47, False, False, None),
    ("退坑的改装党", 66, False, True, None), ("偶尔看看", 90, False, False, 2021),
]
WINBACK_GIFT = 100


def seed_campaigns(rng, staff, members) -> None:
    """Members who stopped coming 35–90 days ago (a few with a recalled BYD 汉 EV), and two
    finished campaigns made through the real code paths: a win-back to the opted-in ones (100-point return gift, push + SMS, sent
    six days ago, a fifth of them came back through their link) and the safety recall
    S2026-0123 to the owners of the cars it reaches (sent two days ago). The campaigns are sent
    at a Shanghai-daytime moment in the past and fanned out here, batch by batch (each batch
    commits, the seed so far with it); their texts go through the outbox like any other (the
    log SMS backend in development): seeded in Shanghai's quiet hours (21:00–08:00), the
    report shows them waiting until the worker sends them at 08:00."""
    from datetime import datetime, time

    from sqlalchemy import update

    from models.activity import record_day
    from models.audit import AuditEntry
    from models.campaigns import Audience, Campaign, CampaignTarget
    from models.campaigns.editing import CampaignInput, save_campaign, send
    from models.campaigns.returns import open_link, return_token
    from models.consents import record_signup, set_marketing
    from models.garage import CarInput, CarMake, CarSeries, save_car
    from models.loyalty import award
    from models.nonces import new_nonce
    from models.push import Delivery
    from models.recalls import Recall
    from models.types import SHANGHAI
    from services.campaigns import fan_out_batch

    admin = staff[-1]
    now = utcnow()
    today = now.astimezone(SHANGHAI).date()
    communities = ensure_communities()
    rules = ["story_posted", "comment", "like_received", "event_attended"]
    han = db.session.scalar(select(CarSeries).join(CarMake).where(CarMake.name == "比亚迪", CarSeries.name == "汉 EV"))
    for n, (nickname, away, opted_in, phone, han_year) in enumerate(LAPSED):
        last = today - timedelta(days=away)
        joined = now - timedelta(days=away + rng.randint(120, 400))
        user = User(nickname=nickname, password_hash=staff[0].password_hash, consent_version=staff[0].consent_version,
                    consent_at=joined, created_at=joined, phone=f"137{n + 10:08d}" if phone else None,
                    email=None if phone else f"lapsed{n}@cheyou.example", phone_verified_at=joined if phone else None)
        db.session.add(user)
        db.session.flush()
        record_signup(user, source="signup" if not phone else "sms_signup", now=joined)
        if opted_in:
            set_marketing(user, True, now=joined + timedelta(days=rng.randint(1, 30)))
        for slug in rng.sample(list(communities), rng.randint(1, 2)):
            communities[slug].join(user)
        # They were active once: some points, and their active days, up to the last one.
        span = max(1, (last - joined.astimezone(SHANGHAI).date()).days)
        for i in range(rng.randint(3, 8)):
            when = datetime.combine(last - timedelta(days=rng.randint(0, span)), time(rng.randint(9, 21)),
                                    tzinfo=SHANGHAI)
            award(user, rng.choice(rules), cause=("demo", f"lapsed-{n}-{i}"), key=f"demo:lapsed:{i}", now=when)
            record_day(user.id, when.date())
        record_day(user.id, last)
        if han_year:
            save_car(user, CarInput(series_id=han.id, model_year=han_year,
                                    mileage_km=rng.randrange(20000, 120000, 1000)))
    db.session.flush()

    def daytime(days_ago, hour):
        return datetime.combine(today - timedelta(days=days_ago), time(hour, 0), tzinfo=SHANGHAI).astimezone(now.tzinfo)

    def send_and_fan_out(campaign, at):
        """Send CAMPAIGN as at AT and run its fan-out here, batch by batch, as at AT; then date
        it (its audit rows, targets and inbox rows are already dated AT) as finished at AT."""
        send(admin, campaign, now=at)
        after = 0
        while (after := fan_out_batch(campaign.id, after, at)) is not None:
            pass
        db.session.refresh(campaign)
        campaign.created_at = at - timedelta(hours=2)
        campaign.started_at, campaign.finished_at = at, at + timedelta(minutes=1)
        db.session.execute(update(AuditEntry).where(AuditEntry.target_type == Campaign.__tablename__,
                                                    AuditEntry.target_id == str(campaign.id))
                           .values(created_at=at - timedelta(minutes=5)))
        notes = select(CampaignTarget.notification_id).where(CampaignTarget.campaign_id == campaign.id)
        db.session.execute(update(Delivery).where(Delivery.notification_id.in_(notes), Delivery.sent_at.is_not(None))
                           .values(sent_at=at + timedelta(minutes=1)))

    # A thread-mode runner would start on the fan-out's commits and run these campaigns' jobs
    # beside this seed; the fan-out is driven here, and the outbox is the runner's after the seed.
    runner = current_app.extensions["jobs"]
    autostart = getattr(runner, "autostart", None)
    if autostart:
        runner.autostart = False
    try:
        winback = save_campaign(admin, CampaignInput(
            kind="winback", title="好久不见，回来领 100 积分", link="/events",
            body="这周末有电池健康免费检测和新手保养小课堂，回来看看老朋友们在聊什么。点链接回来即送 100 积分回归礼。",
            channels=("push", "sms"), gift_points=WINBACK_GIFT, audience=Audience(inactive_days=30)), nonce=new_nonce())
        sent_at = daytime(6, 10)
        send_and_fan_out(winback, sent_at)
        targets = list(db.session.scalars(select(CampaignTarget).where(CampaignTarget.campaign_id == winback.id)
                                          .order_by(CampaignTarget.user_id)))
        # A fifth of them came back through their link within days (the gift is credited then);
        # one more tapped it signed out and never signed in: a click, not a return.
        returners = max(1, round(len(targets) * 0.2))
        for n, target in enumerate(rng.sample(targets, min(len(targets), returners + 1))):
            opened = sent_at + timedelta(hours=rng.randint(3, 90))
            member = db.session.get(User, target.user_id)
            open_link(return_token(winback.id, member.id), member if n < returners else None, now=opened)
            if n < returners:
                record_day(member.id, opened.astimezone(SHANGHAI).date())

        recall = db.session.scalar(select(Recall).where(Recall.number == "S2026-0123"))
        safety = save_campaign(admin, CampaignInput(
            kind="recall", title=f"安全召回 {recall.number}：比亚迪汉 EV", link="/me/garage",
            body="您的爱车在召回范围内：前副车架螺栓可能松动。厂家免费检查并重新紧固，请尽快预约就近服务店。",
            channels=("push", "sms"), audience=Audience(recall_id=recall.id)), nonce=new_nonce())
        send_and_fan_out(safety, daytime(2, 15))
    finally:
        if autostart:
            runner.autostart = True
