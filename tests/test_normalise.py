from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import normalise
from transforms.isbn import isbn13_is_valid, normalise_issn, to_isbn13


def test_chinese_title_variants_share_one_key():
    variants = [
        ("红楼梦", "脂砚斋评本"),
        ("紅樓夢", "脂硯齋評本"),  # traditional characters
        ("红 楼 梦：脂砚斋评本", None),  # spaces between Han, subtitle glued with a full-width colon
        ("红楼梦", "脂砚斋评本。"),
    ]
    keys = {normalise.title_key(title, subtitle) for title, subtitle in variants}
    assert keys == {"红楼梦脂砚斋评本"}


def test_pinyin_key_reads_each_han_character_toneless_and_ignores_the_rest():
    assert normalise.pinyin_key("紅樓夢 研究") == normalise.pinyin_key("红楼梦：研究") == "hongloumengyanjiu"
    assert normalise.pinyin_key("绿色重庆 2nd ed.") == "lvsezhongqing"  # ü as v; one reading per character
    assert normalise.pinyin_key("红楼梦") == normalise.pinyin_key("洪楼梦")  # a homophone typo keeps the key
    assert normalise.pinyin_key("Pride and prejudice") is None and normalise.pinyin_key(None) is None


def test_full_width_digits_and_latin_fold_to_half_width():
    assert normalise.title_key("Ｐｙｔｈｏｎ编程 第２版") == "python编程第2版"


def test_western_keys_fold_case_and_diacritics():
    assert normalise.title_key("Voyage autour du Monde", "par la frégate") == "voyageautourdumondeparlafregate"


def test_a_title_of_symbols_never_gets_an_empty_key():
    assert normalise.title_key("……") != ""


def test_years_and_pages_from_what_libraries_write():
    assert [normalise.parse_year(t) for t in ("2015.3", "c2015", "[2015]", "2015年", "n.d.")] == [2015, 2015, 2015, 2015, None]
    assert [normalise.parse_pages(t) for t in ("320页", "xii, 320 p.", "320p", "1 v.")] == [320, 320, 320, 1]


def test_publisher_suffixes_fold():
    assert normalise.publisher_key("浙江人民出版社有限公司") == normalise.publisher_key("浙江人民出版社")


def test_volume_designations_compare_by_number():
    assert normalise.part_key("第１册") == normalise.part_key("第 1 册") == "1"
    assert normalise.part_key("上") != normalise.part_key("下")


def test_isbn10_converts_and_invalid_isbns_are_refused():
    assert to_isbn13("7-5037-1744-0 (平装)") == "9787503717444"
    assert to_isbn13("ISBN 978-7-5037-1744-4") == "9787503717444"
    assert to_isbn13("7-5037-1744-1") is None  # wrong check digit
    assert to_isbn13("CNY68.00") is None
    assert isbn13_is_valid("9787503717444") and not isbn13_is_valid("9787503717445")


def test_issn_check_digit():
    assert normalise_issn("0317-8471") == "0317-8471"
    assert normalise_issn("0317-8472") is None


@settings(max_examples=2000, deadline=None, database=None)
@given(st.text(st.characters(max_codepoint=0x17F), max_size=30))
def test_compact_keys_of_ascii_text_take_the_short_way_to_the_same_key(text):
    assert normalise._compact_key(text) == normalise.fold_text(text).replace(" ", "")


def test_folding_han_only_text_is_t2s_alone():
    """fold_text takes a shortcut for text of CJK unified ideographs only: every such character,
    and phrases whose conversion depends on their neighbours (乾燥 → 干燥, 乾隆 stays), fold as
    the general path folds them."""
    characters = [chr(c) for start, end in ((0x3400, 0x4DC0), (0x4E00, 0xA000)) for c in range(start, end)]
    phrases = ["乾燥", "乾隆", "頭髮", "後來", "紅樓夢", "中國歷史", "圖書館學", "發展", "皇后", "理髮", "著作權"]
    for text in characters + phrases:
        assert normalise._ONLY_UNIFIED_HAN.fullmatch(text)
        assert normalise._to_simplified().convert(text) == normalise._folded(text), text
    assert normalise.fold_text("乾燥劑") == "干燥剂" and normalise.fold_text("乾隆") == "乾隆"
