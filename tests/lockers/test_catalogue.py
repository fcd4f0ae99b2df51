import re
from pathlib import Path

import pytest

from lockers.catalogue import (
    ITEM_CATEGORIES, MAX_QUANTITY, REASON_CODES, CatalogueError, ItemCheck, check_item, load_catalogue,
)

#: the 19 class titles of the 2016 guide catalogue, as the text copies print them
CATALOGUE_TITLES = (
    "枪支（含仿制品、主要零部件）弹药", "管制器具", "爆炸物品", "压缩和液化气体及其容器", "易燃液体",
    "易燃固体、自燃物质、遇水易燃物质", "氧化剂和过氧化物", "毒性物质", "生化制品、传染性、感染性物质", "放射性物质",
    "腐蚀性物质", "毒品及吸毒工具、非正当用途麻醉药品和精神药品、非正当用途的易制毒化学品",
    "非法出版物、印刷品、音像制品等宣传品", "间谍专用器材", "非法伪造物品", "侵犯知识产权和假冒伪劣物品",
    "濒危野生动物及其制品", "禁止进出境物品", "其他物品",
)
CJK = re.compile(r"[\u4e00-\u9fff]")

GOOD_CLASS = """
[[class]]
id = "a"
number = 1
title_zh = "甲"
title_en = "A"
examples_zh = ["一"]
examples_en = ["one"]
"""


def test_catalogue_has_the_19_classes_in_order():
    classes = load_catalogue()
    assert tuple(c.title_zh for c in classes) == CATALOGUE_TITLES
    assert [c.number for c in classes] == list(range(1, 20))
    assert len({c.id for c in classes}) == 19


def test_every_class_has_both_languages():
    for c in load_catalogue():
        assert c.title_zh.strip() and c.title_en.strip()
        assert CJK.search(c.title_zh) and not CJK.search(c.title_en), c.id
        assert c.examples_zh and len(c.examples_zh) == len(c.examples_en), c.id
        for zh, en in zip(c.examples_zh, c.examples_en):
            assert zh.strip() and en.strip()
            assert CJK.search(zh) and not CJK.search(en), (c.id, en)


def test_catalogue_examples_that_residents_meet():
    by_id = {c.id: c for c in load_catalogue()}
    assert "打火机" in by_id["gases"].examples_zh and "lighters" in by_id["gases"].examples_en
    assert "气雾剂" in by_id["gases"].examples_zh
    assert "油漆" in by_id["flammable_liquids"].examples_zh and "酒精" in by_id["flammable_liquids"].examples_zh
    assert "烟花" in by_id["explosives"].examples_zh
    assert "蓄电池" in by_id["corrosive"].examples_zh
    # lithium-ion batteries are not a catalogue example (only lithium metal): no class claims them
    assert not any("锂电池" in e for c in load_catalogue() for e in c.examples_zh)


def test_load_catalogue_is_immutable_and_reused():
    first = load_catalogue()
    assert first is load_catalogue()
    assert isinstance(first, tuple) and isinstance(first[0].examples_zh, tuple)


def test_every_category_resolves():
    class_ids = {c.id for c in load_catalogue()}
    for key, category in ITEM_CATEGORIES.items():
        assert category.id == key
        assert category.title_zh and category.title_en
        if category.prohibited_class is not None:
            assert category.prohibited_class in class_ids, key
        if category.refusal is not None:
            assert category.refusal in REASON_CODES
        result = check_item(key, 1, True)
        assert result.ok == category.accepted, key


def test_accepted_categories_pass_with_the_declaration():
    accepted = [k for k, c in ITEM_CATEGORIES.items() if c.accepted]
    assert {"documents", "clothing", "books", "daily_goods", "electronics", "food", "local_produce", "medicine",
            "cosmetics", "other"} <= set(accepted)
    for key in accepted:
        assert check_item(key, 1, True) == ItemCheck(True, None, None)
        assert check_item(key, MAX_QUANTITY, True).ok


@pytest.mark.parametrize(("key", "cls"), [
    ("lighter_gas", "gases"), ("aerosols", "gases"), ("fireworks", "explosives"),
    ("paint_solvents", "flammable_liquids"), ("matches", "flammable_solids"), ("car_battery", "corrosive"),
    ("knives", "controlled_instruments"), ("toxic_pesticides", "toxic"), ("ivory_wildlife", "endangered_wildlife"),
])
def test_prohibited_choice_refused_with_its_class(key, cls):
    for declared in (True, False):
        assert check_item(key, 1, declared) == ItemCheck(False, "prohibited", cls)


def test_every_prohibited_category_is_refused_with_its_class():
    prohibited = [c for c in ITEM_CATEGORIES.values() if c.refusal == "prohibited"]
    assert len(prohibited) >= 5
    for c in prohibited:
        assert check_item(c.id, 1, True) == ItemCheck(False, "prohibited", c.prohibited_class)


def test_refusals_outside_the_catalogue():
    assert check_item("lithium_batteries", 1, True) == ItemCheck(False, "needs_counter_inspection", None)
    assert check_item("cash", 1, True) == ItemCheck(False, "not_accepted", None)


def test_declaration_missing():
    assert check_item("clothing", 2, False) == ItemCheck(False, "declaration_missing", None)


@pytest.mark.parametrize("quantity", [0, -1, MAX_QUANTITY + 1, 10_000])
def test_quantity_out_of_range(quantity):
    assert check_item("books", quantity, True) == ItemCheck(False, "quantity", None)


def test_quantity_is_checked_before_the_declaration():
    assert check_item("books", 0, False).reason_code == "quantity"


def test_unknown_category():
    assert check_item("guns", 1, True) == ItemCheck(False, "unknown_category", None)


def test_bad_arguments_raise():
    with pytest.raises(TypeError):
        check_item("books", 1.0, True)
    with pytest.raises(TypeError):
        check_item("books", True, True)
    with pytest.raises(TypeError):
        check_item("books", 1, "yes")


def test_a_good_file_loads(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text(GOOD_CLASS, encoding="utf-8")
    (only,) = load_catalogue(path)
    assert only.id == "a" and only.examples_en == ("one",)


@pytest.mark.parametrize(("text", "message"), [
    ("", "no \\[\\[class\\]\\]"),
    ("[[class\n", "not valid UTF-8 TOML"),
    (GOOD_CLASS.replace('title_en = "A"', 'title_en = ""'), "title_en"),
    (GOOD_CLASS.replace('examples_en = ["one"]', 'examples_en = ["one", "two"]'), "examples_zh has 1"),
    (GOOD_CLASS.replace('examples_zh = ["一"]', "examples_zh = []"), "examples_zh"),
    (GOOD_CLASS.replace("number = 1", "number = 2"), "number must be 1"),
    (GOOD_CLASS + GOOD_CLASS.replace("number = 1", "number = 2"), "repeats class ids: a"),
])
def test_a_malformed_file_is_refused(tmp_path: Path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError, match=message):
        load_catalogue(path)


def test_a_missing_file_is_refused(tmp_path: Path):
    with pytest.raises(CatalogueError, match="not readable"):
        load_catalogue(tmp_path / "missing.toml")
