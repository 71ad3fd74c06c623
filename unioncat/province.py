"""The demo province: a deterministic generator of realistic library catalogue drops.

`write_demo_drops` invents a Chinese catalogue of `titles` manifestations and writes the file each
library would drop for harvesting (`<drops_root>/<library id>/`), plus `<drops_root>/truth.csv`
giving, for every record written (`<library id>:<001>`), its manifestation and work. Dedup is
scored against that truth, so the catalogue holds on purpose what makes dedup hard (DOMAIN.md):
- multi-volume sets (上/中/下, 第1册…): one set ISBN on every volume, each volume its own
  manifestation; editions (第2版, 修订版) of one work with new ISBNs; popular titles (唐诗三百首,
  红楼梦, 数学分析…) from several publishers, a classic as one work, a textbook title as a new work
  each time; translations of one original; gazetteers (志, 年鉴, 文史资料), ancient books (古籍) and
  pre-1987 books without ISBN; ISBNs a publisher reused (`REUSED_ISBN_RATE`) and single records
  with a mistyped ISBN (`ISBN_TYPO_RATE`, invalid check digit, listed in
  `DemoSummary.isbn_typo_keys`).
- Zipf-like holdings: most books in one to three libraries, popular ones in dozens; provincial and
  city libraries hold more than counties; a gazetteer is held by its place's library, the city
  libraries of its city and the provincial library; ancient books mostly by the provincial one.
- Every holding library writes its OWN CNMARC record (own 001, 005 and 905 holdings) with its own
  odds (`HABITS`) of the variants libraries differ in: full-width or traditional characters, spaces
  between characters, subtitle glued into 200$a, 著/主编 glued to names, 有限公司 publishers, years
  as `2015`/`2015.3`/`c2015`/`[2015]`, ISBN-10 or -13 with or without hyphens or `(平装)`, no 010.
- Exports as in a real province: most ISO 2709 UTF-8 (`catalogue.mrc`, 100$a/26-29 `50  `), a
  quarter ISO 2709 GB18030 (`0120`), a few MARCXML (`catalogue.xml`). Exactly one county library's
  dump stops in the middle of its last record (a broken export for the quarantine; that record is
  not in truth.csv): the county the seed ranks first among the ISO 2709 exporters, reported as
  `DemoSummary.truncated_library` (with the 102 libraries of sources.toml and the default seed:
  ZJ096, 青田县图书馆).
- Real records from `demo/real/` (300 Library of Congress MARC21 and 10 Beijing Normal University
  CNMARC records, see PROVENANCE.md there) go to 1-6 provincial/city libraries each, as
  `real-marc21.mrc` / `real-cnmarc.xml`: own 001 (the original in 035 `(orig)…`), and the
  library's holdings (852 / 905) instead of the source's local fields (9XX, Alma's AVA/OWN).
Output is byte-identical for the same libraries and seed. Works are invented one at a time and
their records streamed into every library's open file, so memory does not grow with the province;
each file is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import csv
import heapq
import os
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Callable, Iterator, Sequence

import opencc
import pymarc
from pymarc import Field, Indicators, Record, Subfield

from transforms.isbn import isbn10_check_digit, isbn13_check_digit
from transforms.iso2709 import encode_record, split_records

DEFAULT_REAL_DIR = Path(__file__).resolve().parent.parent / "demo" / "real"
GENERATED_FILES = ("catalogue.mrc", "catalogue.xml", "real-marc21.mrc", "real-cnmarc.xml")
REUSED_ISBN_RATE = 0.005  # per manifestation: its publisher gave it the ISBN of its previous book
ISBN_TYPO_RATE = 0.0005  # per library record: one digit of the ISBN mistyped
FIRST_ISBN_YEAR = 1987  # China adopted the ISBN in 1987
LATEST_CHANGE = datetime(2026, 11, 20, 18, 0, 0)

# ---- building blocks ---------------------------------------------------------------------------

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈姚卢姜钟陆汪范金夏方邹孟秦江尹段雷侯史陶贺顾毛钱严戴孔汤楼俞应"
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官")
GIVEN_NAME_CHARS = "伟芳敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉兰萍红建国文辉力永健志兴良海山波宁福生龙学祥新利清飞彬顺子昌成康光达安林坚和博诚振乐群晓宏鸣维克翔旭鹏泽晨家树德时雄钧航弘晴岚"
# name place ISBN-registrant(978-7-<this>-…) what-it-publishes (CLC letters; Z = gazetteers)
PUBLISHERS_TABLE = """
浙江人民出版社 杭州 213 DFGKZ; 浙江大学出版社 杭州 308 DFGORT; 浙江古籍出版社 杭州 5540 IKZ; 浙江文艺出版社 杭州 5339 I
浙江教育出版社 杭州 5536 G; 浙江科学技术出版社 杭州 5341 RT; 浙江工商大学出版社 杭州 5178 F; 西泠印社出版社 杭州 5508 K
杭州出版社 杭州 5565 KZ; 宁波出版社 宁波 5526 KZ; 人民出版社 北京 01 DFK; 人民文学出版社 北京 02 I; 科学出版社 北京 03 ORT
高等教育出版社 北京 04 FGOT; 商务印书馆 北京 100 DFGIK; 中华书局 北京 101 IKZ; 人民教育出版社 北京 107 G
生活·读书·新知三联书店 北京 108 DIK; 机械工业出版社 北京 111 FT; 中国建筑工业出版社 北京 112 T; 人民邮电出版社 北京 115 T
人民卫生出版社 北京 117 R; 电子工业出版社 北京 121 T; 化学工业出版社 北京 122 RT; 中国人民大学出版社 北京 300 DFG
北京大学出版社 北京 301 DFIKO; 清华大学出版社 北京 302 FT; 北京师范大学出版社 北京 303 G; 中国中医药出版社 北京 5132 R
外语教学与研究出版社 北京 5135 G; 方志出版社 北京 5144 Z; 中国社会科学出版社 北京 5161 DFK; 法律出版社 北京 5197 D
社会科学文献出版社 北京 5201 DFK; 作家出版社 北京 5212 I; 中信出版社 北京 5217 F; 上海人民出版社 上海 208 DFK
复旦大学出版社 上海 309 DFKO; 上海古籍出版社 上海 5325 IKZ; 上海译文出版社 上海 5327 I; 上海科学技术出版社 上海 5478 RT
华东师范大学出版社 上海 5760 GO; 译林出版社 南京 5447 I; 江苏人民出版社 南京 214 DK; 长江文艺出版社 武汉 5702 I
岳麓书社 长沙 5538 IK; 广西师范大学出版社 桂林 5598 GIK
"""
GENRES = {  # CLC letter: topics "stem:class:subject", title endings, subtitles, series, responsibility roles
    "I": (
        "江南:I247.5:长篇小说 故乡:I267:散文集 西湖:I227:新诗 运河:I247.5:长篇小说 小镇:I247.7:短篇小说集 父亲:I267:散文集 少年:I247.5:长篇小说 远方:I227:新诗 "
        "白鹭:I247.7:中篇小说 钱塘:I247.5:长篇小说 山居:I267:散文集",
        "往事 的河流 纪事 笔记 旧梦 人家 之歌 的夏天 四季 灯火 散记 十年", "一个小镇的记忆 献给母亲 我的江南 乡村岁月",
        "当代浙江作家文丛 中国当代长篇小说丛书 茅盾文学奖获奖作品全集", "著 著 著 编"),
    "K": (
        "宋代:K244:中国历史-宋代 南宋:K245:中国历史-南宋 明代:K248:中国历史-明代 清代:K249:中国历史-清代 近代中国:K25:中国历史-近代 民国:K258:中国历史-民国 "
        "隋唐:K241:中国历史-隋唐 秦汉:K232:中国历史-秦汉 吴越国:K243.6:吴越国 两浙:K295.5:地方史-浙江 大运河:K928.42:大运河-历史 丝绸之路:K203:丝绸之路-文化史",
        "史 社会生活史 政治制度史 经济史 文化史 史稿 史话 研究 通史 人物志", "以浙江为中心 一个区域史的考察 新史料与新视野 从地方看国家",
        "浙江文化研究工程成果文库 浙江历史文化专题史 中华史学丛书", "著 著 主编 编著"),
    "F": (
        "数字经济:F49:信息经济 区域经济:F061.5:区域经济学 民营经济:F121.23:私营经济 乡村振兴:F320.3:农村经济发展 县域经济:F127:地方经济 共同富裕:F124.7:共同富裕 "
        "国际贸易:F74:国际贸易 金融风险:F830.9:金融风险 公司治理:F276.6:企业管理 电子商务:F713.36:电子商务 会计学:F230:会计学 市场营销:F713.50:市场营销学",
        "概论 研究 导论 教程 原理 案例研究 发展报告 理论与实践 新论", "以浙江为例 理论、政策与实践 基于长三角的实证研究 问题与对策 中国的经验",
        "浙江省社科规划成果文库 经济管理新形态教材", "著 编著 主编 主编"),
    "T": (
        "Python程序设计:TP311.561:软件工具-程序设计 数据结构:TP311.12:数据结构 人工智能:TP18:人工智能 机器学习:TP181:机器学习 计算机网络:TP393:计算机网络 "
        "数据库系统:TP311.13:数据库系统 单片机:TP368.1:单片微型计算机 自动控制:TP13:自动控制理论 机械设计:TH122:机械设计 电工电子技术:TM1:电工技术 建筑结构:TU3:建筑结构 "
        "智能制造:TH166:智能制造系统",
        "基础 教程 实用教程 原理与应用 从入门到精通 实践 设计与实现 习题集", "微课版 基于项目的学习 原理、算法与应用 慕课版",
        "普通高等教育“十三五”规划教材 高等学校计算机专业系列教材", "编著 主编 主编 著"),
    "D": (
        "基层治理:D638:基层政权 社会治理:D630:社会管理 公共管理:D035:行政管理 行政法:D922.1:行政法 民法典:D923:民法 宪法:D921:宪法 国际关系:D81:国际关系 "
        "社区治理:D669.3:社区管理 数字政府:D630.1:电子政务",
        "概论 研究 教程 通论 释义 案例评析 读本 理论与实务", "浙江的探索与实践 以“枫桥经验”为例 比较与借鉴",
        "法学研究文丛 浙江省社科规划成果文库", "著 编著 主编 主编"),
    "G": (
        "学前教育:G61:学前教育 家庭教育:G78:家庭教育 课程与教学论:G423:课程-教学研究 教育心理学:G44:教育心理学 阅读推广:G252.17:阅读推广 图书馆学:G250:图书馆学 "
        "高等教育:G64:高等教育 职业教育:G71:职业教育 博物馆学:G260:博物馆学",
        "概论 导论 研究 教程 原理 新论 实践探索 案例精选", "理论与实践 公共图书馆的探索 面向未来的教育",
        "阅读推广人系列教材 教育科学研究丛书", "著 编著 主编 主编"),
    "R": (
        "中医基础理论:R22:中医医学基础 内科:R5:内科学 外科:R6:外科学 护理:R47:护理学 药理:R96:药理学 针灸:R245:针灸疗法 中药:R28:中药学 老年保健:R161.7:老年人-保健 "
        "儿童营养:R153.2:儿童-营养卫生 中医养生:R212:养生(中医)",
        "学 学基础 学教程 手册 概论 临床指南 图解 精要", "全彩图解版 临床实用版 第二部分",
        "全国高等中医药院校规划教材 健康中国科普丛书", "主编 主编 编著 著"),
}
# popular titles printed by many publishers: title, class, subject, and the fixed authors ("name/role/origin")
# of a classic, or "" for a title every publisher has its own authors (and work) for
POPULAR = (
    ("唐诗三百首", "I222.742", "唐诗-诗集", "蘅塘退士/编/清"), ("宋词三百首", "I222.844", "宋词-选集", "上彊村民/编/清"),
    ("古文观止", "I262", "古典散文-作品集", "吴楚材/选/清 吴调侯/选/清"), ("红楼梦", "I242.47", "章回小说", "曹雪芹/著/清 高鹗/续/清"),
    ("西游记", "I242.4", "章回小说", "吴承恩/著/明"), ("三国演义", "I242.4", "章回小说", "罗贯中/著/明"),
    ("水浒传", "I242.4", "章回小说", "施耐庵/著/明"), ("围城", "I246.5", "长篇小说", "钱锺书/著/"),
    ("骆驼祥子", "I246.5", "长篇小说", "老舍/著/"), ("边城", "I246.5", "中篇小说", "沈从文/著/"),
    ("朝花夕拾", "I210.4", "散文集", "鲁迅/著/"), ("活着", "I247.57", "长篇小说", "余华/著/"),
    ("数学分析", "O17", "数学分析", ""), ("高等数学", "O13", "高等数学", ""), ("线性代数", "O151.2", "线性代数", ""),
    ("中国近代史", "K25", "中国历史-近代史", ""), ("大学语文", "H19", "大学语文", ""),
)
# translations: Chinese title, original title, author, nationality, class, original language, subject
TRANSLATIONS = (
    ("傲慢与偏见", "Pride and prejudice", "简·奥斯汀", "英", "I561.44", "eng", "长篇小说"),
    ("老人与海", "The old man and the sea", "海明威", "美", "I712.45", "eng", "中篇小说"),
    ("百年孤独", "Cien años de soledad", "加西亚·马尔克斯", "哥伦比亚", "I775.45", "spa", "长篇小说"),
    ("小王子", "Le petit prince", "圣埃克苏佩里", "法", "I565.88", "fre", "童话"),
    ("雪国", "雪国", "川端康成", "日", "I313.45", "jpn", "中篇小说"),
    ("国富论", "The wealth of nations", "亚当·斯密", "英", "F091.33", "eng", "古典政治经济学"),
    ("人类简史", "Sapiens", "尤瓦尔·赫拉利", "以色列", "K02", "eng", "世界史"),
)
# ancient books: title, class, author/role/dynasty
ANCIENT = (
    ("资治通鉴", "K204.3", "司马光/撰/宋"), ("说文解字注", "H161", "段玉裁/注/清"), ("杜工部集", "I222.742", "杜甫/撰/唐"),
    ("东坡全集", "I214.412", "苏轼/撰/宋"), ("西湖志", "K928.43", "李卫/修/清"), ("武林旧事", "K295.51", "周密/撰/宋"),
    ("梦粱录", "K295.51", "吴自牧/撰/宋"), ("湖山便览", "K928.43", "翟灏/辑/清"), ("两浙輶轩录", "I222.749", "阮元/辑/清"),
)
ANCIENT_PRINTERS = (("浙江书局", "杭州"), ("扫叶山房", "上海"), ("同文书局", "上海"), ("武英殿", "北京"))
REIGNS = (("清同治", 1862, 13), ("清光绪", 1875, 34), ("清宣统", 1909, 3), ("民国", 1912, 37))
ERAS = ("先秦", "秦汉", "魏晋南北朝", "隋唐", "宋元", "明清")  # part names (200$i) of history sets
GAZETTEER_TITLES = ("{}志", "{}志", "{}年鉴", "{}文史资料", "{}地名志", "{}教育志", "{}交通志")
CN_DIGITS = "〇一二三四五六七八九"
YEAR_STYLES = ("{y}", "{y}.{m}", "c{y}", "[{y}]")
LEVEL_WEIGHT = {"province": 40.0, "city": 6.0, "county": 1.0}
# a library's odds of each cataloguing variant, drawn once per library from these choices
HABITS = {
    "hyphens": (0.1, 0.9), "isbn13_for_old_books": (0.1, 0.5), "qualifier": (0.02, 0.3), "no_isbn": (0.005, 0.03),
    "fullwidth": (0.01, 0.2), "traditional": (0, 0, 0, 0.1), "spaced": (0.01, 0.1), "glued_subtitle": (0.1, 0.7),
    "glued_responsibility": (0.3, 0.95), "company_suffix": (0.05, 0.4), "pages_as_p": (0.02, 0.6),
    "price_in_yuan": (0.02, 0.2), "usual_year_style": (0.6, 0.9),
}
FULLWIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}

# ---- what a library, a book and a run look like ------------------------------------------------


@dataclass(frozen=True)
class DemoLibrary:
    """The registry's Library has these attributes too; either can be passed (duck typing)."""

    id: str
    name: str
    city: str
    level: str  # "province" | "city" | "county"


@dataclass
class DemoSummary:
    libraries: int
    records: int
    manifestations: int
    files: int
    truth_path: Path
    truncated_library: str | None = None
    isbn_typo_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Publisher:
    name: str
    place: str
    prefix: str = ""  # ISBN registrant element; "" for printers and internal publications
    publishes: str = ""


PUBLISHERS = tuple(Publisher(*entry.split()) for entry in re.split(r"[;\n]", PUBLISHERS_TABLE) if entry.strip())


@dataclass(frozen=True)
class Person:
    name: str
    role: str  # 著, 编著, 主编, 译, 注…
    origin: str = ""  # dynasty (清) or nationality (英), written before the name: (清)曹雪芹


@dataclass(frozen=True)
class Manifestation:
    label: str
    work: str
    kind: str  # holdings pattern: ordinary | popular | set | local | ancient
    title: str
    publisher: Publisher
    year: int
    clc: str
    subject: str  # 606: heading-subdivision
    authors: tuple[Person, ...] = ()  # 200$f, 701
    contributors: tuple[Person, ...] = ()  # 200$g, 702: translators, annotators
    corporate: str = ""  # 200$f, 712: compiling committees
    subtitle: str = ""  # 200$e
    part: str = ""  # 200$h
    part_name: str = ""  # 200$i
    edition: str = ""
    isbn: str = ""  # 13 digits, "" when the book has none
    month: int = 1
    pages: int = 0
    volumes: int = 0  # extent of an ancient book, in 册
    price: str = ""
    size: int = 26
    series: str = ""
    date_note: str = ""  # an ancient book's reign date, e.g. 清光绪十年
    original: tuple[str, str] = ("", "")  # a translation's original title and language
    locality: int = -1  # a gazetteer's place: index of that place's library


# ---- ISBNs -------------------------------------------------------------------------------------


def written_isbn(isbn: str, prefix: str, *, thirteen: bool, hyphens: bool) -> str:
    """The ISBN as a cataloguer keys it: ISBN-10 or -13, with or without hyphens."""
    item = isbn[4 + len(prefix) : 12]
    parts = ("978", "7", prefix, item, isbn[12]) if thirteen else ("7", prefix, item, isbn10_check_digit(isbn[3:12]))
    return ("-" if hyphens else "").join(parts)


def mistype(isbn: str, rng: random.Random) -> str:
    """One wrong digit near the end of the ISBN (never the check digit)."""
    position = rng.choice([i for i, c in enumerate(isbn[:-1]) if c.isdigit()][-5:])
    return isbn[:position] + rng.choice([d for d in "0123456789" if d != isbn[position]]) + isbn[position + 1 :]


class IsbnAgency:
    """Hands out 978-7 ISBNs, running numbers within each publisher's registrant block (a block of
    10 ** (8 - len(prefix)) numbers wraps around only far beyond the demo's size)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.next_item: dict[str, int] = {}
        self.last: dict[str, str] = {}

    def assign(self, publisher: Publisher) -> str:
        if publisher.name in self.last and self.rng.random() < REUSED_ISBN_RATE:
            return self.last[publisher.name]
        width = 8 - len(publisher.prefix)
        if publisher.name not in self.next_item:
            self.next_item[publisher.name] = self.rng.randrange(10 ** (width - 1), 5 * 10 ** (width - 1))
        item = self.next_item[publisher.name]
        self.next_item[publisher.name] = (item + self.rng.randint(1, 4)) % 10**width
        first12 = f"9787{publisher.prefix}{item:0{width}d}"
        self.last[publisher.name] = first12 + isbn13_check_digit(first12)
        return self.last[publisher.name]


# ---- the catalogue: works and their manifestations ---------------------------------------------


def reign_year(n: int) -> str:
    """A reign year as written in Chinese numerals: 元, 九, 十四, 二十八."""
    tens, units = divmod(n, 10)
    if n == 1:
        return "元"
    return ((CN_DIGITS[tens] if tens > 1 else "") + "十" if tens else "") + (CN_DIGITS[units] if units else "")


def locality_name(library: DemoLibrary) -> str:
    """The place a library serves, as gazetteers name it: 杭州市余杭区图书馆 → 余杭区, 杭州图书馆 → 杭州市."""
    place = library.name.removesuffix("图书馆")
    if library.level == "county" and place.startswith(library.city) and len(place) > len(library.city) + 1:
        place = place[len(library.city) :].removeprefix("市")
    if not place.endswith(("省", "市", "县", "区")):
        place += {"province": "省", "city": "市"}.get(library.level, "县")
    return place


class Catalogue:
    """Invents works one at a time; `groups` yields each work's manifestations."""

    def __init__(self, rng: random.Random, libraries: Sequence[DemoLibrary]):
        self.rng = rng
        self.isbns = IsbnAgency(rng)
        places = [(i, locality_name(lib)) for i, lib in enumerate(libraries)]
        self.localities = [(i, place) for i, place in places if libraries[i].level != "province"] or places
        self.cities = [lib.city for lib in libraries]
        self.works = self.manifestations = self.labelled = 0

    def groups(self, titles: int) -> Iterator[list[Manifestation]]:
        builders = (self.ordinary, self.popular, self.translation, self.gazetteer, self.ancient)
        while self.manifestations < titles:
            self.works += 1
            group = self.rng.choices(builders, weights=(84, 4, 2, 6, 4))[0]()[: titles - self.manifestations]
            self.manifestations += len(group)
            yield group

    def labels(self, work: str = "") -> dict[str, str]:
        self.labelled += 1
        return {"label": f"M{self.labelled:07d}", "work": work or f"W{self.works:06d}"}

    def person(self, role: str) -> Person:
        surname = self.rng.choice(COMPOUND_SURNAMES) if self.rng.random() < 0.02 else self.rng.choice(SURNAMES)
        return Person(surname + "".join(self.rng.choices(GIVEN_NAME_CHARS, k=self.rng.choice((1, 2, 2)))), role)

    def publisher(self, letter: str) -> Publisher:
        return self.rng.choice([p for p in PUBLISHERS if letter in p.publishes] or PUBLISHERS)

    def book(self, publisher: Publisher, year: int, *, isbn: str | None = None, **fields) -> Manifestation:
        pages = self.rng.randint(120, 800)
        price = max(1, round(pages * 0.008 * 1.08 ** (year - 1980))) + self.rng.choice((0, 0, 0.5, 0.8))
        if isbn is None:
            isbn = self.isbns.assign(publisher) if year >= FIRST_ISBN_YEAR else ""
        details = {"month": self.rng.randint(1, 12), "size": self.rng.choice((19, 21, 23, 24, 26, 26)),
                   "price": f"CNY{price:.2f}", **fields}
        return Manifestation(publisher=publisher, year=year, isbn=isbn, pages=pages, **details)

    def ordinary(self) -> list[Manifestation]:
        rng = self.rng
        letter = rng.choice(list(GENRES))
        topics, endings, subtitles, series, roles = (part.split() for part in GENRES[letter])
        stem, clc, subject = rng.choice(topics).split(":")
        role = rng.choice(roles)
        work = {
            "title": stem + rng.choice(endings), "clc": clc, "subject": subject,
            "subtitle": rng.choice(subtitles) if rng.random() < 0.25 else "",
            "series": rng.choice(series) if rng.random() < 0.15 else "",
            "authors": tuple(self.person(role) for _ in range(rng.choice((1, 1, 1, 2, 3)))),
        }
        publisher, year, shape = self.publisher(letter), rng.randint(1980, 2025), rng.random()
        if shape < 0.06:
            return self.volume_set(publisher, year, "set", work, letter == "K")
        if shape < 0.18 and year < 2020:
            return self.editions(publisher, year, work)
        return [self.book(publisher, year, kind="ordinary", **work, **self.labels())]

    def volume_set(self, publisher: Publisher, year: int, kind: str, work: dict, named_parts: bool) -> list:
        """One set ISBN on every volume; each volume is its own manifestation of the set's work."""
        count = self.rng.choice((2, 3, 3, 4, 6))
        parts = {2: ["上册", "下册"], 3: self.rng.choice((["上", "中", "下"], ["上册", "中册", "下册"]))}.get(
            count, [f"第{n}册" for n in range(1, count + 1)])
        eras = sorted(self.rng.sample(ERAS, count), key=ERAS.index) if named_parts else [""] * count
        with_isbn = year >= FIRST_ISBN_YEAR and (kind == "set" or self.rng.random() < 0.6)
        isbn, work_label = self.isbns.assign(publisher) if with_isbn else "", f"W{self.works:06d}"
        size = self.rng.choice((21, 24, 26))
        return [self.book(publisher, year, isbn=isbn, kind=kind, part=part, part_name=era, size=size, **work,
                          **self.labels(work_label)) for part, era in zip(parts, eras)]

    def editions(self, publisher: Publisher, year: int, work: dict) -> list[Manifestation]:
        """A work reissued as 第2版/修订版: new ISBN, new year, sometimes a new publisher, same work."""
        books, work_label = [], f"W{self.works:06d}"
        for n, edition in enumerate(["", self.rng.choice(("第2版", "修订版")), "第3版"][: self.rng.choice((2, 2, 3))]):
            if n and self.rng.random() < 0.2:
                publisher = self.publisher(work["clc"][0])
            labels = self.labels(work_label)
            books.append(self.book(publisher, year, kind="ordinary", edition=edition, **work, **labels))
            year = min(2025, year + self.rng.randint(2, 8))
        return books

    def popular(self) -> list[Manifestation]:
        """A title many publishers print: a classic stays one work, a textbook title is a new work each time."""
        index = self.rng.randrange(len(POPULAR))
        title, clc, subject, authors = POPULAR[index]
        printers = [p for p in PUBLISHERS if clc[0] in p.publishes] or [p for p in PUBLISHERS if "G" in p.publishes]
        books = []
        for publisher in self.rng.sample(printers, min(len(printers), self.rng.randint(1, 4))):
            if authors:
                people = tuple(Person(*a.split("/")) for a in authors.split())
                helpers = (self.person(self.rng.choice(("校注", "注释", "评注"))),) if self.rng.random() < 0.4 else ()
                labels = self.labels(f"W-P{index:02d}")
            else:
                self.works += 1
                people, helpers, labels = (self.person(self.rng.choice(("主编", "编著"))),), (), self.labels()
            books.append(self.book(publisher, self.rng.randint(1980, 2025), kind="popular", title=title, clc=clc,
                                   subject=subject, authors=people, contributors=helpers, **labels))
        return books

    def translation(self) -> list[Manifestation]:
        """Translations of one foreign work by different translators and publishers: one work."""
        index = self.rng.randrange(len(TRANSLATIONS))
        title, original, author, nation, clc, language, subject = TRANSLATIONS[index]
        return [self.book(self.publisher(clc[0]), self.rng.randint(1980, 2025), kind="popular", title=title, clc=clc,
                          subject=subject, authors=(Person(author, "著", nation),), contributors=(self.person("译"),),
                          original=(original, language), **self.labels(f"W-T{index:02d}"))
                for _ in range(self.rng.randint(1, 3))]

    def gazetteer(self) -> list[Manifestation]:
        """A book about one place (志, 年鉴, 文史资料); 年鉴 and 文史资料 are internal, without ISBN."""
        locality, place = self.rng.choice(self.localities)
        template, year = self.rng.choice(GAZETTEER_TITLES), self.rng.randint(1985, 2025)
        work = {"title": template.format(place), "clc": "K295.5", "subject": f"地方志-{place}", "locality": locality}
        if template == "{}志":
            work["corporate"] = f"{place}地方志编纂委员会"
            if self.rng.random() < 0.4:
                return self.volume_set(self.publisher("Z"), year, "local", work, False)
            return [self.book(self.publisher("Z"), year, kind="local", **work, **self.labels())]
        work["title"] += f"（{year}）" if template == "{}年鉴" else ""
        issuer = f"政协{place}文史资料委员会" if "文史" in template else f"{place}地方志办公室"
        return [self.book(Publisher(issuer, self.cities[locality]), year, isbn="", price="", kind="local",
                          corporate=issuer, **work, **self.labels())]

    def ancient(self) -> list[Manifestation]:
        """A 古籍 in one or two imprints: no ISBN, no price, extent in 册."""
        index = self.rng.randrange(len(ANCIENT))
        title, clc, author = ANCIENT[index]
        books = []
        for _ in range(self.rng.choice((1, 1, 2))):
            (reign, first_year, length), printer = self.rng.choice(REIGNS), self.rng.choice(ANCIENT_PRINTERS)
            n = self.rng.randint(1, length)
            books.append(Manifestation(
                kind="ancient", title=title, clc=clc, subject="古籍", authors=(Person(*author.split("/")),),
                publisher=Publisher(*printer), year=first_year + n - 1, date_note=f"{reign}{reign_year(n)}年",
                edition=self.rng.choice(("刻本", "石印本", "铅印本")), volumes=self.rng.randint(2, 24),
                size=self.rng.choice((24, 26, 28)), **self.labels(f"W-A{index:02d}")))
        return books


# ---- holdings ----------------------------------------------------------------------------------


class Holdings:
    """Decides which libraries hold each manifestation (as indexes into the library list)."""

    def __init__(self, rng: random.Random, libraries: Sequence[DemoLibrary]):
        self.rng, self.libraries = rng, libraries
        self.weights = [LEVEL_WEIGHT.get(lib.level, 1.0) * rng.uniform(0.5, 1.5) for lib in libraries]
        self.ancient_weights = [{"province": 50.0, "city": 3.0}.get(lib.level, 0.3) for lib in libraries]

    def for_group(self, group: list[Manifestation]) -> list[list[int]]:
        if group[0].part:  # a library that has a set has its volumes; a few lack one, but not of their own place
            owners, home = self.for_book(group[0]), group[0].locality
            return [[i for i in owners if i == home or self.rng.random() > 0.1] or owners[:1] for _ in group]
        return [self.for_book(m) for m in group]

    def for_book(self, m: Manifestation) -> list[int]:
        n = len(self.libraries)
        if m.kind == "local":
            return self.local_owners(m.locality)
        if m.kind == "ancient":
            return weighted_sample(self.rng, self.rng.randint(1, 3), self.ancient_weights)
        count = int(self.rng.paretovariate(1.2))  # Zipf-like: P(count >= k) = k ** -1.2
        if m.kind == "popular":
            count = max(count, self.rng.randint(max(2, n // 20), max(5, n * 2 // 5)))
            return weighted_sample(self.rng, count, self.weights)
        return weighted_sample(self.rng, min(count, max(3, n // 3)), self.weights)

    def local_owners(self, home: int) -> list[int]:
        """The place's own library, the city libraries of its city, the provincial library."""
        place, owners = self.libraries[home], [home]
        for i, lib in enumerate(self.libraries):
            same_city = lib.city == place.city
            odds = {"province": 0.8, "city": 0.7 * same_city}.get(lib.level, 0.25 * same_city * (place.level == "city"))
            if i != home and odds and self.rng.random() < odds:
                owners.append(i)
        return sorted(owners)


def weighted_sample(rng: random.Random, count: int, weights: list[float]) -> list[int]:
    """`count` indexes drawn without replacement, in proportion to `weights` (Efraimidis-Spirakis keys)."""
    keys = [rng.random() ** (1.0 / w) for w in weights]
    return sorted(heapq.nlargest(min(count, len(keys)), range(len(keys)), key=keys.__getitem__))


# ---- one library's records ---------------------------------------------------------------------


@cache
def simplified_to_traditional() -> opencc.OpenCC:
    return opencc.OpenCC("s2t")


@cache
def indicators(pair: str) -> Indicators:
    return Indicators(*pair)


def datafield(tag: str, pair: str, *subfields: tuple[str, str]) -> Field:
    return Field(tag, indicators(pair), [Subfield(code, value) for code, value in subfields if value])


def marc_record(leader: str) -> Record:
    record = Record()
    record.leader = pymarc.Leader(leader)  # Record(leader=...) would force MARC21's "4500"
    return record


def responsibility(people: Sequence[Person], glued: bool, brackets: str) -> str:
    """200$f/$g: `(清)曹雪芹著；高鹗续`, names that share a role joined before the role word."""
    parts, names = [], []
    for n, person in enumerate(people):
        origin = f"{brackets[:1]}{person.origin}{brackets[1:]}" if person.origin and brackets else ""
        names.append(origin + person.name)
        if n + 1 == len(people) or people[n + 1].role != person.role:
            parts.append("，".join(names) + ("" if glued else " ") + person.role)
            names = []
    return "；".join(parts)


def spaced_out(text: str, rng: random.Random) -> str:
    """Spaces between characters, as some libraries key titles (红 楼 梦, 江南 往事)."""
    cut = rng.randint(2, len(text) - 2) if len(text) > 5 else 0
    return text[:cut] + " " + text[cut:] if cut else " ".join(text)


class LibraryDrop:
    """One library's drop folder: its catalogue file, its numbering and its cataloguing habits."""

    def __init__(self, library: DemoLibrary, folder: Path, export: str, seed: int, truth: TruthFile, *, cut_last: bool):
        self.library, self.folder, self.export = library, folder, export
        self.rng = random.Random(f"{seed}:library:{library.id}")
        self.odds = {habit: self.rng.choice(choices) for habit, choices in HABITS.items()}
        prefix = re.sub(r"[^A-Za-z0-9]", "", library.id).upper()[:6] or "L"
        self.local_id = self.rng.choice((prefix + "{:08d}", "{:010d}", prefix.lower() + "{:07d}"))
        self.year_style = self.rng.choice(YEAR_STYLES)
        self.origin_brackets = self.rng.choice(("()", "[]", ""))
        self.number = self.rng.randint(1, 400_000)
        self.book_numbers: dict[str, int] = {}
        self.isbn_typos: list[str] = []
        name = "catalogue.xml" if export == "marcxml" else "catalogue.mrc"
        self.catalogue = CatalogueFile(folder / name, export, truth, cut_last=cut_last)

    def chance(self, habit: str) -> bool:
        return self.rng.random() < self.odds[habit]

    def next_local_id(self) -> str:
        self.number += self.rng.randint(1, 3)
        return self.local_id.format(self.number)

    def add(self, m: Manifestation) -> None:
        local_id = self.next_local_id()
        self.catalogue.write(self.cnmarc_record(m, local_id), (f"{self.library.id}:{local_id}", m.label, m.work))

    def cnmarc_record(self, m: Manifestation, local_id: str) -> Record:
        rng = self.rng
        fullwidth, traditional = self.chance("fullwidth"), self.chance("traditional")

        def text(value: str) -> str:
            value = simplified_to_traditional().convert(value) if traditional and value else value
            return value.translate(FULLWIDTH) if fullwidth else value

        entered = datetime(max(m.year, 1990), 1, 1) + timedelta(days=rng.randint(0, 700))
        entered = min(entered, LATEST_CHANGE - timedelta(days=30))
        changed = min(entered + timedelta(days=rng.randint(0, 2500), seconds=rng.randint(0, 86399)), LATEST_CHANGE)
        record = marc_record("00000nam0 2200000   450 ")
        record.add_field(Field("001", data=local_id), Field("005", data=f"{changed:%Y%m%d%H%M%S}.0"))
        isbn = ""
        if m.isbn and not self.chance("no_isbn"):
            thirteen = m.year >= 2007 or self.chance("isbn13_for_old_books")
            isbn = written_isbn(m.isbn, m.publisher.prefix, thirteen=thirteen, hyphens=self.chance("hyphens"))
            if rng.random() < ISBN_TYPO_RATE:
                isbn = mistype(isbn, rng)
                self.isbn_typos.append(f"{self.library.id}:{local_id}")
            isbn += "(平装)" if self.chance("qualifier") else ""
        price = m.price.replace("CNY", "") + "元" if m.price and self.chance("price_in_yuan") else m.price
        if isbn or price:
            record.add_field(datafield("010", "  ", ("a", isbn), ("d", price)))
        charset = "0120" if self.export == "gb18030" else "50  "
        original_title, original_language = m.original
        record.add_field(
            datafield("100", "  ", ("a", f"{entered:%Y%m%d}d{m.year:04d}    em y0chiy{charset}    ea")),
            datafield("101", "1 " if original_language else "0 ", ("a", "chi"), ("c", original_language)),
        )
        title = spaced_out(m.title, rng) if self.chance("spaced") else m.title
        glued_subtitle, glued = m.subtitle and self.chance("glued_subtitle"), self.chance("glued_responsibility")
        first = responsibility(m.authors, glued, self.origin_brackets) or (m.corporate and m.corporate + "编")
        record.add_field(datafield(
            "200", "1 ", ("a", text(f"{title}：{m.subtitle}" if glued_subtitle else title)),
            ("e", "" if glued_subtitle else text(m.subtitle)), ("h", text(m.part)), ("i", text(m.part_name)),
            ("f", text(first)), ("g", text(responsibility(m.contributors, glued, self.origin_brackets)))))
        for tag, pair, subfields in (
            ("205", "  ", [("a", text(m.edition))]),
            ("210", "  ", [("a", m.publisher.place), ("c", text(self.publisher_name(m))),
                           ("d", text(self.year_as_written(m)))]),
            ("215", "  ", [("a", text(self.extent(m))), ("c", "图" if rng.random() < 0.3 else ""),
                           ("d", f"{m.size}cm" if rng.random() < 0.8 else f"{m.size} cm")]),
            ("225", "2 ", [("a", text(m.series))]),
            ("510", "1 ", [("a", original_title), ("z", original_language)]),
            ("606", "0 ", [(code, text(s)) for code, s in zip("axxx", m.subject.split("-"))]),
            ("690", "  ", [("a", m.clc), ("v", "5")]),
            *(("701", " 0", [("a", p.name), ("4", p.role)]) for p in m.authors),
            *(("702", " 0", [("a", p.name), ("4", p.role)]) for p in m.contributors),
            ("712", "02", [("a", m.corporate), ("4", "编")]),
            ("801", " 0", [("a", "CN"), ("b", self.library.id), ("c", f"{entered:%Y%m%d}")]),
        ):
            if subfields[0][1]:
                record.add_field(datafield(tag, pair, *subfields))
        record.add_field(self.holdings_905(m.clc))
        return record

    def holdings_905(self, clc: str) -> Field:
        """905 $a library $d class $e 种次号 (running number within the class) $f copies."""
        self.book_numbers[clc] = self.book_numbers.get(clc, 0) + 1
        copies = self.rng.choice((1, 1, 1, 2, 2, 3, 4, 5) if self.library.level != "county" else (1, 1, 1, 1, 2, 3))
        return datafield("905", "  ", ("a", self.library.id), ("d", clc), ("e", str(self.book_numbers[clc])),
                         ("f", str(copies)))

    def publisher_name(self, m: Manifestation) -> str:
        if m.publisher.prefix and m.year >= 2010 and self.chance("company_suffix"):
            return m.publisher.name + self.rng.choice(("有限公司", "有限责任公司"))
        return m.publisher.name

    def year_as_written(self, m: Manifestation) -> str:
        if m.date_note:
            return self.rng.choice((f"{m.date_note}[{m.year}]", m.date_note, str(m.year)))
        style = self.year_style if self.chance("usual_year_style") else self.rng.choice(YEAR_STYLES)
        return style.format(y=m.year, m=m.month)

    def extent(self, m: Manifestation) -> str:
        if m.volumes:
            return f"{m.volumes}册"
        return f"{m.pages}p." if self.chance("pages_as_p") else f"{m.pages}页"


# ---- files -------------------------------------------------------------------------------------


class TruthFile:
    """truth.csv, written row by row under a temporary name."""

    def __init__(self, path: Path):
        self.path, self.tmp, self.rows = path, path.with_name(path.name + ".tmp"), 0
        self.handle = open(self.tmp, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle, lineterminator="\n")
        self.writer.writerow(("record_key", "manifestation_label", "work_label"))

    def add(self, record_key: str, manifestation: str, work: str) -> None:
        self.writer.writerow((record_key, manifestation, work))
        self.rows += 1

    def close(self) -> None:
        self.handle.close()
        os.replace(self.tmp, self.path)


class CatalogueFile:
    """A MARC file written under a temporary name and renamed into place when closed. With
    `cut_last` it is cut off in the middle of its last record, whose truth row is never written."""

    def __init__(self, path: Path, export: str, truth: TruthFile, *, cut_last: bool = False):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        self.handle = open(self.tmp, "wb")
        self.xml = pymarc.XMLWriter(self.handle) if export == "marcxml" else None
        self.encoding = "gb18030" if export == "gb18030" else "utf-8"
        self.truth, self.cut_last = truth, cut_last and not self.xml
        self.pending: tuple[str, str, str] | None = None
        self.last_start = self.records = 0

    def write(self, record: Record, truth_row: tuple[str, str, str]) -> None:
        if self.xml:
            self.xml.write(xml_safe(record))
        else:
            self.last_start = self.handle.tell()
            self.handle.write(encode_record(record, self.encoding))
        self.records += 1
        row: tuple[str, str, str] | None = truth_row
        if self.cut_last:  # hold each row back until its record is known not to be the last
            row, self.pending = self.pending, truth_row
        if row:
            self.truth.add(*row)

    def close(self) -> bool:
        """Finish the file; True if its last record was cut off."""
        cut = self.cut_last and self.records > 1
        if cut:
            self.handle.truncate(self.last_start + (self.handle.tell() - self.last_start) // 2)
        elif self.pending:
            self.truth.add(*self.pending)
        if self.xml:
            self.xml.close(close_fh=False)
        self.handle.close()
        os.replace(self.tmp, self.path)
        return cut


def xml_safe(record: Record) -> Record:
    """Drop control characters XML cannot carry; give the leader its real length and base address."""
    strip = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]").sub
    for f in record.fields:
        if f.is_control_field():
            f.data = strip("", f.data)
        else:
            f.subfields = [Subfield(s.code, strip("", s.value)) for s in f.subfields]
    record.leader = pymarc.Leader(encode_record(record, "utf-8")[:24].decode("ascii"))
    return record


# ---- real records ------------------------------------------------------------------------------


def real_marc21_records(real_dir: Path) -> Iterator[Record]:
    path = real_dir / "loc_books_300.mrc"
    for _, chunk in split_records(path.read_bytes() if path.exists() else b""):
        yield Record(data=chunk, to_unicode=True, force_utf8=True)


def real_cnmarc_records(real_dir: Path) -> Iterator[Record]:
    """CNMARC records of an SRU response in NLC's cnmarcxml; pymarc's lax parser reads any namespace."""
    path = real_dir / "sample_cnmarcxml.xml"
    yield from pymarc.parse_xml_to_array(str(path)) if path.exists() else ()


def marc21_holdings(drop: LibraryDrop, record: Record) -> Field:
    call_number = " ".join(record["050"].get_subfields("a", "b")) if record["050"] else ""
    return datafield("852", "  ", ("a", drop.library.id), ("h", call_number))


def cnmarc_holdings(drop: LibraryDrop, record: Record) -> Field:
    return drop.holdings_905(record["690"]["a"] if record["690"] and record["690"]["a"] else "Z")


# label, records, file name, export, holdings field
REAL_SOURCES: tuple[tuple[str, Callable, str, str, Callable], ...] = (
    ("LOC", real_marc21_records, "real-marc21.mrc", "utf-8", marc21_holdings),
    ("CNMARC", real_cnmarc_records, "real-cnmarc.xml", "marcxml", cnmarc_holdings),
)


def localised(record: Record, local_id: str, holdings: Field) -> Record:
    """A library's copy of a real record: own 001 (the original in 035), own holdings instead of
    the source library's local fields (9XX, and Alma's AVA/OWN)."""
    copy = marc_record(str(record.leader).replace("-", " "))  # NLC's XML writes leader blanks as "-"
    copy.add_field(Field("001", data=local_id))
    copy.add_field(*(f for f in record.fields if f.tag != "001" and f.tag.isdigit() and f.tag[0] != "9"))
    copy.add_ordered_field(datafield("035", "  ", ("a", f"(orig){record['001'].data if record['001'] else ''}")))
    copy.add_ordered_field(holdings)
    return copy


def write_real_records(
    drops: list[LibraryDrop], rng: random.Random, truth: TruthFile, real_dir: Path
) -> tuple[int, list[Path]]:
    """Give each real record to 1-6 provincial or city libraries; returns (records given, files written)."""
    large = [d for d in drops if d.library.level in ("province", "city")]
    weights = [3.0 if d.library.level == "province" else 1.0 for d in large]
    given, paths = 0, []
    for source, records, file_name, export, holdings in REAL_SOURCES if large else ():
        files: dict[str, CatalogueFile] = {}
        for record in records(real_dir):
            original = record["001"].data.strip() if record["001"] else str(given)
            given += 1
            for n in weighted_sample(rng, rng.randint(1, min(6, len(large))), weights):
                drop, local_id = large[n], large[n].next_local_id()
                if drop.library.id not in files:
                    files[drop.library.id] = CatalogueFile(drop.folder / file_name, export, truth)
                row = (f"{drop.library.id}:{local_id}", f"M-{source}-{original}", f"W-{source}-{original}")
                files[drop.library.id].write(localised(record, local_id, holdings(drop, record)), row)
        for file in files.values():
            file.close()
            paths.append(file.path)
    return given, paths


# ---- the province ------------------------------------------------------------------------------


def export_plan(libraries: Sequence[DemoLibrary], rng: random.Random) -> tuple[list[str], str | None]:
    """Each library's export (a few MARCXML, a quarter GB18030, the rest UTF-8) and the county
    library whose dump gets cut off: the first county the seed ranks among the ISO 2709 exporters."""
    ranked = list(range(len(libraries)))
    rng.shuffle(ranked)
    xml, gb = (max(1, len(ranked) // 12), max(1, len(ranked) // 4)) if len(ranked) >= 3 else (0, 0)
    formats = [""] * len(ranked)
    for rank, i in enumerate(ranked):
        formats[i] = "marcxml" if rank < xml else "gb18030" if rank < xml + gb else "utf-8"
    broken = [libraries[i].id for i in ranked if libraries[i].level == "county" and formats[i] != "marcxml"]
    return formats, broken[0] if broken else None


def write_demo_drops(
    libraries: Sequence[DemoLibrary],
    drops_root: Path,
    *,
    titles: int = 2000,
    seed: int = 20261125,
    real_records_dir: Path | None = DEFAULT_REAL_DIR,
) -> DemoSummary:
    """Write every library's drop folder and truth.csv under `drops_root` (see the module docstring)."""
    libraries = sorted(libraries, key=lambda lib: lib.id)
    drops_root = Path(drops_root)
    drops_root.mkdir(parents=True, exist_ok=True)
    formats, truncated = export_plan(libraries, random.Random(f"{seed}:exports"))
    truth = TruthFile(drops_root / "truth.csv")
    drops = [LibraryDrop(lib, drops_root / lib.id, export, seed, truth, cut_last=lib.id == truncated)
             for lib, export in zip(libraries, formats)]
    catalogue = Catalogue(random.Random(f"{seed}:catalogue"), libraries)
    holdings = Holdings(random.Random(f"{seed}:holdings"), libraries)
    for group in catalogue.groups(titles):
        for m, owners in zip(group, holdings.for_group(group)):
            for i in owners:
                drops[i].add(m)
    cut = [drop.library.id for drop in drops if drop.catalogue.close()]
    real_given, written = 0, [drop.catalogue.path for drop in drops]
    if real_records_dir is not None:
        real_given, real_paths = write_real_records(drops, random.Random(f"{seed}:real"), truth, Path(real_records_dir))
        written += real_paths
    truth.close()
    for drop in drops:  # files an earlier run wrote that this run did not write again
        for stale in (drop.folder / name for name in GENERATED_FILES):
            if stale not in written:
                stale.unlink(missing_ok=True)
    return DemoSummary(
        libraries=len(libraries), records=truth.rows, manifestations=catalogue.manifestations + real_given,
        files=len(written), truth_path=truth.path, truncated_library=cut[0] if cut else None,
        isbn_typo_keys=tuple(key for drop in drops for key in drop.isbn_typos),
    )
