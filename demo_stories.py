"""Demo stories for `flask seed-demo`: what members of each community write, and their photos.

Each entry is (title, Markdown body, tags, photo captions). Stories with captions get that many
photos, drawn here with Pillow (a sky, a road and a car in a random colour and shape, the
caption in a band at the bottom) and stored through the upload pipeline like a member's photo.
"""
from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFont

STORY_LIBRARY: dict[str, list[tuple[str, str, list[str], list[str]]]] = {
    "ev": [
        ("零下 10 度通勤一周，续航掉了多少？", "表显 520 公里，一周实测：\n\n- 白天 0 度左右：能跑 **400** 公里\n- 零下 10 度早高峰：只剩 **330** 公里\n- 提前预约加热电池，能多跑 20 公里\n\n冬天别等到 20% 才充，心态会好很多。", ["tips"], ["冬季续航实测"]),
        ("家用充电桩安装全流程：物业、报装、费用", "1. 物业开同意安装证明\n2. 带购车发票去供电局报装（免费）\n3. 电工上门布线，我家 40 米线花了 1800 元\n\n从申请到通电一共 **12 天**，谷电 0.3 元一度，真香。", ["tips"], ["家充桩装好了"]),
        ("看二手电车，我让卖家现场跑了一次快充", "快充能说明很多问题：\n\n- 充电功率能不能到标称的一半以上\n- 电芯温差大不大\n- 有没有报故障码\n\n卖家不愿意去充电站的，直接下一台。", ["purchase", "traps"], ["快充测试现场"]),
        ("电池 SOH 怎么查？三种办法对比", "- **4S 店检测报告**：最权威，200 元左右\n- **OBD 读数 App**：便宜，但不是每个车型都准\n- **满充实际续航**：最直观，要花一天时间\n\n买二手电车至少要有其中一种。", ["tips"], []),
        ("夜间谷电充电站整理（持续更新）", "整理了城西几个 23 点后打折的快充站，服务费 0.4 元起，大家补充～\n\n开车多的车友每月能省两三百。", ["tips"], ["夜里充电的车友"]),
        ("电车保险第二年涨了 40%，正常吗？", "第一年 4800，今年报价 6700，中间只出过一次小剐蹭。是我运气不好还是电车都这样？", ["question"], []),
        ("开了两年的电车卖掉，残值告诉大家", "22 万买的，两年 4 万公里，车商收 **11.5 万**。电池 SOH 94%，检测报告帮我多卖了 8000。\n\n电车保值率确实不如油车，但用车成本省回来不少。", ["purchase"], ["卖车前最后一张"]),
        ("800 公里高速回老家，充了三次电", "服务区快充排队最长 25 分钟，节假日建议错峰。\n\n- 开到 20% 就找桩，不要赌\n- 提前在地图 App 看桩的实时状态\n- 车速 110 比 120 续航多不少", ["tips"], ["服务区充电", "回家路上"]),
        ("电池包底部磕了一下，4S 店说要换整包", "过减速带托底，电池包外壳有划痕，没报故障。4S 店开口就是换整包 8 万多。有没有车友遇到过？能只修外壳吗？", ["question", "traps"], ["电池包底部划痕"]),
        ("热泵空调到底有没有用？冬天对比实测", "同一条路线，同样 22 度：有热泵的车百公里 **17 度电**，没热泵的朋友车 **21 度电**。\n\n北方车友买二手电车，热泵配置值得加钱。", ["tips"], ["同路线对比"]),
        ("二手电车的电池质保能不能转给第二任车主？", "很多品牌的终身质保只给首任车主！买之前一定要问清楚，最好让卖家带着你去 4S 店查。", ["traps"], []),
        ("充电车位被油车占了怎么办？", "小区公共充电位天天被油车占，物业说管不了。大家都是怎么处理的？", ["question"], ["又被占了"]),
        ("电车第一次保养，只花了 199 元", "不用换机油，主要是检查底盘、刹车、换空调滤芯。比以前开油车省心多了。", ["tips"], []),
        ("换电车型的二手车值得买吗？", "看中一台换电车型，价格很香，但是电池是租的，每月要付租金。算下来划算吗？", ["question"], []),
        ("小区充电车位申请成功，材料清单分享", "- 购车发票复印件\n- 车位产权证明或租赁合同\n- 物业同意书\n- 身份证复印件\n\n前后跑了两趟，希望对大家有帮助！", ["tips"], ["专属充电位"]),
    ],
    "women": [
        ("一个人夜里加油，我会做的几件事", "- 选亮、人多的大站\n- 下车前锁好车门，包不放副驾\n- 加完油马上走，不在站里玩手机\n\n安全感是自己给自己的。", ["tips"], ["夜里的加油站"]),
        ("倒车入库总是歪？教练教我的三个参照点", "1. 后视镜看到库角，方向打死\n2. 车身和库线平行，回正\n3. 后轮压到库角线，停\n\n在空停车场练了一下午，现在一把进！", ["tips"], ["倒车入库练习"]),
        ("保养被推销 800 元的“发动机清洗”，姐妹们别上当", "保养手册上根本没有这一项。现在我只做手册里的项目，多出来的一律说“下次再说”。", ["traps"], []),
        ("行车记录仪怎么选：前后双录 + 停车监控", "我的经验：\n\n- 一定要 **前后双录**\n- 停车监控要接降压线，不然会亏电\n- 存储卡选高耐久的\n\n上次被追尾，全靠它。", ["tips"], ["新装的记录仪"]),
        ("第一次自己换雨刮，5 分钟搞定", "网上买的雨刮 60 元一对，店里要 180。按住卡扣往下一拉就下来了，超简单！", ["tips"], ["换好的雨刮"]),
        ("遇到碰瓷怎么办？我的处理经验", "- 不下车争吵，先报警\n- 记录仪视频马上备份\n- 不私了，不给现金\n\n警察来了一看视频，对方自己走了。", ["traps", "tips"], []),
        ("带娃出行，安全座椅安装要点", "ISOFIX 接口一定要听到“咔哒”声，支撑腿要踩实地面。装好后用力晃一晃，位移不超过 2 厘米才算合格。", ["tips"], ["安全座椅"]),
        ("胎压报警了别慌：仪表盘上的灯怎么看", "黄色马蹄形带感叹号就是胎压灯。先找安全地方停车看轮胎，没明显瘪就慢慢开去补气，再去店里查有没有扎钉。", ["tips"], ["胎压报警灯"]),
        ("二手车买回来，第一件事是全车换油吗？", "刚买了一台 5 年的小车，卖家说刚保养过，但没有记录。我要不要全部重新换一遍？", ["question"], []),
        ("她车社周末自驾莫干山，路线和民宿分享", "一共 5 台车 9 个姐妹，山路不难开，注意弯道别超车。民宿老板人超好，停车方便。\n\n下次活动见～", ["tips"], ["莫干山山路", "姐妹们的车", "民宿门口"]),
        ("小个子开 SUV：座椅和后视镜这样调", "我 155 cm：座椅升到最高，往前调到踩满刹车膝盖还微弯；外后视镜看到一点点车身就够了。视野一下开阔了！", ["tips"], ["调好的驾驶位"]),
        ("洗车店办卡要谨慎，我的 2000 元打了水漂", "办了年卡，半年后店就关了，老板电话打不通。以后只用平台的券，不再预存钱了。", ["traps"], []),
        ("车里常备的 10 样小东西", "充电线、纸巾、雨伞、手电筒、急救包、反光背心、三角牌、胎压计、湿巾、一双平底鞋。\n\n平底鞋真的很重要！", ["tips"], ["后备箱收纳"]),
        ("下雨天高速起雾，怎么开最安全？", "打开雾灯和近光灯，**不要开远光**；拉大车距，跟着车道线慢慢开；能见度太低就进服务区等一等。", ["tips"], ["雨雾天高速"]),
        ("4S 店说刹车片要换，我该信吗？", "开了 3 万公里，师傅说刹车片只剩 3 毫米。网上说 2 毫米才要换，我该听谁的？", ["question"], []),
    ],
    "modding": [
        ("避震换绞牙：舒适和操控怎么平衡", "阻尼调到中间偏软，高度只降 2 厘米，日常过减速带完全能接受，弯道侧倾小了很多。\n\n作业图见下。", ["build"], ["绞牙避震", "降低后的姿态"]),
        ("改装排气年检能过吗？我的踩坑经历", "换了直通，声音是爽了，年检噪音超标被打回。最后装回原厂中尾段才过。**合规第一**！", ["traps", "build"], []),
        ("全车隐形车衣贴了一年，说说感受", "高速上的小石子没留下一个坑，洗车也好洗。就是边缘有一点翘，店家免费补贴了。", ["build"], ["车衣一年后"]),
        ("大灯升级 LED 合规指南", "原车卤素灯换 LED 灯泡不合规！要合规只能换整套带认证的总成，还要去车管所办变更。", ["tips", "traps"], ["大灯总成"]),
        ("音响改装：先换喇叭还是先加功放？", "预算 5000，原车音响很闷。是先换前门喇叭，还是先加一个功放？求老司机指点。", ["question"], []),
        ("轮毂翻新还是换新？价格效果对比", "- 翻新：每只 300 元，颜色随便选\n- 换新：每只 1200 元起\n\n我的轮毂只是刮花，翻新后看不出区别。", ["build"], ["翻新前", "翻新后"]),
        ("改色贴膜需要去车管所备案吗？", "想把白车贴成哑光灰，听说面积超过 30% 要备案，是真的吗？", ["question"], ["想贴的颜色"]),
        ("车顶行李架 + 帐篷，备案全过程", "行李架属于可以备案的项目，带着产品合格证和安装发票去车管所，半天就办好了。周末露营再也不用住酒店。", ["build"], ["车顶帐篷", "营地日落"]),
        ("刹车升级四活塞卡钳，作业分享", "前轮换四活塞 + 355 打孔盘，刹车脚感更线性。注意要配合 18 寸以上轮毂。", ["build"], ["四活塞卡钳"]),
        ("氛围灯：原厂样式和后装的差别", "后装的便宜，但走线容易出问题。我选的原厂样式，插头直插，不破线，保修也不受影响。", ["build"], ["夜里的氛围灯"]),
        ("座椅换桶椅，安全要注意什么", "一定要用带认证的滑轨和安全带扣，气囊线要接好，不然仪表报警。日常代步车不太建议换。", ["tips"], []),
        ("挑改装店：看这五点不容易被坑", "1. 能开正规发票\n2. 有自己的工位，不是路边店\n3. 敢给你看以前的作业\n4. 不拍胸脯保证“肯定能过年检”\n5. 价格透明，配件能看包装", ["traps"], ["熟悉的改装店"]),
        ("宽体改装想上牌？先了解这些规定", "车身宽度变化属于不能备案的改装，宽体了基本过不了年检。想要宽体的车友，先想好是不是只上赛道。", ["traps"], []),
        ("电车也能改：轮毂降重后续航多了 15 公里", "原厂轮毂 13 公斤一只，换锻造 9 公斤，四只降了 16 公斤。同路线实测续航多了 15 公里左右。", ["build"], ["锻造轮毂"]),
        ("避震改完有异响，原来是顶胶没装好", "改完第二天就咯吱响，回店检查发现顶胶没压到位。重新装好后安静了，大家改完一定要复查。", ["build"], []),
    ],
    "newcomers": [
        ("3 万预算第一辆车：看了十几台才定下来", "最后选了一台 8 年的日系小车，车况干净，保养记录全。\n\n- 别只看价格\n- 一定要带懂车的朋友\n- 第三方检测 300 元很值", ["purchase"], ["我的第一辆车"]),
        ("怎么判断是不是泡水车？", "- 闻：车内有没有霉味\n- 看：座椅滑轨、安全带底部有没有锈和泥沙\n- 摸：地毯下面是不是潮的\n\n有一项不对就别买。", ["traps"], ["座椅滑轨的锈迹"]),
        ("过户全记录：车管所一上午搞定", "带齐身份证、登记证书、行驶证、购车发票，先验车再排队办理。上午 9 点到，11 点半拿到新行驶证。", ["purchase"], ["车管所门口"]),
        ("车商说“准新车”，结果是事故修复", "查了保险记录才发现右侧大修过。车商一开始还不承认。买车前一定要查出险记录！", ["traps"], []),
        ("第一次上高速好紧张，怎么办？", "拿证三个月了，还没上过高速。老司机们第一次上高速有什么建议？", ["question"], []),
        ("保险怎么买：交强险和三者险买多少合适", "交强险必须买。三者险建议至少 **200 万**，城市里万一碰到豪车，100 万真不够。车损险看车价。", ["tips"], []),
        ("调表车怎么查？保养记录加磨损对比", "查 4S 店保养记录看里程是否连贯；方向盘、座椅、踏板的磨损和表显里程对得上吗？2 万公里的车踏板磨平了，肯定有问题。", ["traps"], ["踏板磨损"]),
        ("贷款还是全款？我算了一笔账", "二手车贷款利率普遍比新车高，手续费也多。我最后选了全款买便宜一点的车，不背压力。", ["purchase"], []),
        ("提车当天要检查哪些东西", "- 车和合同上的车架号是否一致\n- 备胎、随车工具\n- 两把钥匙\n- 所有灯光、空调、车窗\n\n检查完再签字付尾款。", ["tips"], ["提车啦", "车架号核对"]),
        ("二手车第一次保养，去 4S 店还是连锁店？", "车已经过了质保，4S 店报价 1200，连锁店 600。配件是一样的吗？", ["question"], []),
        ("新手练车：空旷停车场三个练习", "1. 直线倒车\n2. 侧方停车\n3. 原地掉头\n\n每个练 20 次，一周后明显不慌了。", ["tips"], ["周末练车"]),
        ("买二手车砍价的五个理由", "轮胎快到期、小刮痕、保养快到了、保险快到期、年检快到了：每一条都是谈价的理由。我用这几条砍下了 4000。", ["tips", "purchase"], []),
        ("登记证书上这几栏一定要看", "- 使用性质：营运还是非营运\n- 过户次数\n- 抵押登记\n\n营运车转非营运的，价格要低很多。", ["traps"], ["登记证书"]),
        ("开了一个月的感受：油耗、停车、保险", "市区油耗 7.5 个，停车每月 300，保险一年 3200。比想象中花得多，但周末能带家人出去，值了。", ["purchase"], ["一个月的里程"]),
        ("外地买二手车，迁回本地要注意什么", "先查本地的排放标准！我差点买了一台国四的车，本地只能迁入国五及以上。", ["traps"], []),
    ],
}

# Per community: sky top, sky bottom, ground colour ranges, in RGB.
PALETTES = {
    "ev": ((120, 200, 170), (220, 245, 230), (70, 90, 80)),
    "women": ((240, 150, 170), (255, 225, 220), (110, 90, 95)),
    "modding": ((250, 140, 60), (255, 220, 170), (60, 55, 60)),
    "newcomers": ((90, 150, 240), (210, 230, 255), (80, 85, 95)),
}
CAR_COLOURS = [(200, 30, 40), (250, 250, 250), (25, 25, 30), (40, 90, 180), (160, 165, 170), (30, 130, 90),
               (240, 180, 30), (120, 60, 160), (230, 110, 40), (90, 50, 40)]

WIDTH, HEIGHT = 1200, 900


def _jitter(colour, rng, spread=30):
    return tuple(max(0, min(255, c + rng.randint(-spread, spread))) for c in colour)


def _gradient(top, bottom, size) -> Image.Image:
    """A vertical gradient (a 1-pixel column stretched: fast)."""
    width, height = size
    column = Image.new("RGB", (1, height))
    for y in range(height):
        t = y / max(1, height - 1)
        column.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom)))
    return column.resize(size, Image.Resampling.NEAREST)


def _font(size: int):
    from services.poster import PosterFontMissing, font_path

    try:
        return ImageFont.truetype(font_path(), size)
    except (PosterFontMissing, OSError):
        return None  # no Chinese font: the photo goes without its caption


def demo_photo(rng: random.Random, slug: str, caption: str) -> bytes:
    """A JPEG 'photo': sky, road, a car of random shape and colour, and CAPTION at the bottom."""
    sky_top, sky_bottom, ground = PALETTES[slug]
    horizon = rng.randint(480, 580)
    image = _gradient(_jitter(sky_top, rng), _jitter(sky_bottom, rng), (WIDTH, HEIGHT))
    image.paste(_gradient(_jitter(ground, rng, 20), _jitter(ground, rng, 20), (WIDTH, HEIGHT - horizon)), (0, horizon))
    draw = ImageDraw.Draw(image)
    # A sun or a moon, hills on the horizon, lane marks on the road.
    sx, sy, r = rng.randint(100, 1100), rng.randint(60, horizon - 160), rng.randint(40, 80)
    draw.ellipse((sx - r, sy - r, sx + r, sy + r), fill=_jitter((255, 245, 210), rng, 10))
    for _ in range(rng.randint(2, 4)):
        hx, hw, hh = rng.randint(-200, 1100), rng.randint(300, 700), rng.randint(60, 160)
        draw.ellipse((hx, horizon - hh, hx + hw, horizon + hh), fill=_jitter(ground, rng, 25))
    draw.rectangle((0, horizon, WIDTH, HEIGHT), fill=_jitter(ground, rng, 10))
    for x in range(-60, WIDTH, 180):
        draw.rectangle((x, horizon + 250, x + 100, horizon + 262), fill=(235, 235, 220))

    # The car: a body, a cabin with windows, two wheels; sedan, SUV or hatchback proportions.
    kind = rng.choice(("sedan", "suv", "hatch"))
    length = rng.randint(620, 820)
    x0 = rng.randint(150, WIDTH - length - 150)  # inside the centred square the feed thumbnail keeps
    base = horizon + rng.randint(170, 230)  # where the wheels touch the road
    body_h = {"sedan": 120, "suv": 160, "hatch": 135}[kind]
    cabin_h = {"sedan": 110, "suv": 130, "hatch": 120}[kind]
    wheel_r = {"sedan": 62, "suv": 74, "hatch": 60}[kind]
    body_top = base - wheel_r - body_h + 40
    colour = rng.choice(CAR_COLOURS)
    draw.ellipse((x0 - 10, base - 18, x0 + length + 10, base + 22), fill=tuple(max(0, c - 40) for c in ground))  # shadow
    front, back = x0 + length, x0
    if kind == "sedan":
        cabin = [(back + length * .22, body_top), (back + length * .34, body_top - cabin_h),
                 (back + length * .66, body_top - cabin_h), (back + length * .80, body_top)]
    elif kind == "suv":
        cabin = [(back + length * .06, body_top), (back + length * .10, body_top - cabin_h),
                 (back + length * .68, body_top - cabin_h), (back + length * .82, body_top)]
    else:
        cabin = [(back + length * .04, body_top), (back + length * .12, body_top - cabin_h),
                 (back + length * .60, body_top - cabin_h), (back + length * .78, body_top)]
    draw.polygon(cabin, fill=colour)
    inset = 14
    window = [(cabin[0][0] + inset * 2, body_top), (cabin[1][0] + inset, cabin[1][1] + inset),
              (cabin[2][0] - inset, cabin[2][1] + inset), (cabin[3][0] - inset * 2, body_top)]
    draw.polygon(window, fill=(190, 215, 235))
    pillar = (window[1][0] + window[2][0]) / 2
    draw.rectangle((pillar - 6, cabin[1][1] + inset, pillar + 6, body_top), fill=colour)
    draw.rounded_rectangle((back, body_top - 4, front, base - wheel_r // 3), radius=36, fill=colour)
    draw.rectangle((back + 40, body_top + body_h // 3, front - 40, body_top + body_h // 3 + 6),
                   fill=_jitter(colour, rng, 40))  # a crease along the side
    draw.ellipse((front - 46, body_top + 18, front - 8, body_top + 44), fill=(255, 240, 180))  # headlight
    draw.rectangle((back + 6, body_top + 20, back + 26, body_top + 46), fill=(200, 30, 30))  # tail light
    for wx in (back + length * .2, front - length * .2):
        draw.ellipse((wx - wheel_r, base - 2 * wheel_r, wx + wheel_r, base), fill=(25, 25, 28))
        rim = wheel_r * .55
        draw.ellipse((wx - rim, base - wheel_r - rim, wx + rim, base - wheel_r + rim), fill=(185, 190, 195))

    font = _font(46) if caption else None
    if font is not None:
        band = Image.new("RGBA", (WIDTH, 110), (0, 0, 0, 120))
        image.paste(band, (0, HEIGHT - 110), band)
        draw.text((WIDTH // 2, HEIGHT - 55), caption, font=font, fill="white", anchor="mm")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


COMMENTS = {
    "ev": ["冬天确实掉得厉害，同感。", "请问是哪个充电站？", "收藏了，准备装家充桩。", "电池检测在哪里做的？", "谷电太香了！"],
    "women": ["姐妹说得太对了！", "学到了，明天就去试试。", "收藏，转给我妈看看。", "下次活动带上我～", "这个真的很实用。"],
    "modding": ["作业漂亮！", "求店铺地址。", "年检能过就好，合规第一。", "改完多少钱？", "同款避震，确实舒服。"],
    "newcomers": ["新手必看，谢谢！", "我也踩过这个坑……", "请问第三方检测在哪做的？", "收藏了，下周去看车。", "讲得很清楚，感谢分享。"],
}
