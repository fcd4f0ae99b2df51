import copy
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockers.address import province_names, province_of
from lockers.errors import InvalidInput
from lockers.tariff import DEFAULT_TARIFF, Quote, Tariff, ZonePrice, province_key, sample_toml


@pytest.fixture(scope="module")
def tariff() -> Tariff:
    return Tariff.from_config(DEFAULT_TARIFF)


def config(**changes):
    data = copy.deepcopy(DEFAULT_TARIFF)
    data.update(changes)
    return data


def test_exactly_the_first_weight_costs_the_first_price(tariff):
    assert tariff.quote(1000, "浙江省") == Quote(
        zone="local", weight_g=1000, charged_weight_g=1000, price_fen=800, first_fen=800, extra_steps=0, step_fen=200
    )


def test_one_gram_over_costs_a_whole_step(tariff):
    quote = tariff.quote(1001, "浙江省")
    assert (quote.charged_weight_g, quote.extra_steps, quote.price_fen) == (2000, 1, 1000)


def test_a_light_item_is_charged_the_first_weight(tariff):
    quote = tariff.quote(1, "上海市")
    assert (quote.zone, quote.charged_weight_g, quote.price_fen) == ("neighbours", 1000, 1000)


@pytest.mark.parametrize(
    ("weight_g", "province", "zone", "price_fen"),
    [
        (2500, "江苏省", "neighbours", 1000 + 2 * 300),
        (3000, "广东省", "mainland", 1200 + 2 * 500),
        (5200, "新疆维吾尔自治区", "remote", 2000 + 5 * 1200),
        (30000, "西藏", "remote", 2000 + 29 * 1200),
    ],
)
def test_prices_by_zone(tariff, weight_g, province, zone, price_fen):
    quote = tariff.quote(weight_g, province)
    assert (quote.zone, quote.price_fen) == (zone, price_fen)


@pytest.mark.parametrize("weight_g", [0, -1, -1000])
def test_no_weight_is_refused(tariff, weight_g):
    with pytest.raises(InvalidInput) as caught:
        tariff.quote(weight_g, "浙江省")
    assert caught.value.field == "weight"


def test_over_the_maximum_is_refused(tariff):
    tariff.quote(30000, "浙江省")
    with pytest.raises(InvalidInput) as caught:
        tariff.quote(30001, "浙江省")
    assert caught.value.field == "weight"
    assert "30000" in str(caught.value)


@pytest.mark.parametrize("weight", [1.5, "1000", True, None])
def test_a_weight_that_is_not_whole_grams_is_refused(tariff, weight):
    with pytest.raises(InvalidInput):
        tariff.quote(weight, "浙江省")


def test_short_and_full_province_names_are_one(tariff):
    assert tariff.zone_of("浙江") == tariff.zone_of("浙江省") == "local"
    assert tariff.zone_of("新疆") == tariff.zone_of("新疆维吾尔自治区") == "remote"
    assert tariff.zone_of("内蒙古") == "remote"
    assert tariff.zone_of(" 广西 ") == "mainland"
    assert province_key("黑龙江省") == "黑龙江"


@pytest.mark.parametrize("province", ["香港特别行政区", "台湾省", "火星", ""])
def test_a_destination_without_a_zone_is_a_clear_error(tariff, province):
    with pytest.raises(InvalidInput) as caught:
        tariff.zone_of(province)
    assert caught.value.field == "province"


def test_every_mainland_province_has_a_zone_in_the_default(tariff):
    mainland = [name for name in province_names() if province_key(name) not in {"香港", "澳门", "台湾"}]
    assert len(mainland) == 31
    for name in mainland:
        assert tariff.zone_of(name) in tariff.prices, name


def test_the_default_names_only_real_provinces():
    Tariff.from_config(DEFAULT_TARIFF, known_provinces=province_names())


def test_a_parsed_address_is_priced(tariff):
    assert tariff.quote(800, province_of("乌鲁木齐市天山区人民路1号")).zone == "remote"
    assert tariff.quote(800, province_of("杭州市西湖区文三路100号")).zone == "local"


def test_the_origin_can_be_put_in_another_zone():
    data = config()
    data["zones"]["neighbours"] = ["浙江省", "上海市", "江苏省", "安徽省"]
    del data["prices"]["local"]
    assert Tariff.from_config(data).zone_of("浙江省") == "neighbours"


def test_sample_toml_is_the_default():
    parsed = tomllib.loads(sample_toml())["posting"]["tariff"]
    assert parsed == DEFAULT_TARIFF
    assert Tariff.from_config(parsed) == Tariff.from_config(DEFAULT_TARIFF)


def _bad(path, value):
    data = copy.deepcopy(DEFAULT_TARIFF)
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (_bad(["origin_province"], KeyError), "tariff.origin_province"),
        (_bad(["zones"], KeyError), "tariff.zones"),
        (_bad(["prices"], KeyError), "tariff.prices"),
        (_bad(["zones"], ["浙江省"]), "tariff.zones"),
        (_bad(["zones", "remote"], []), "tariff.zones.remote"),
        (_bad(["zones", "remote"], "新疆"), "tariff.zones.remote"),
        (_bad(["zones", "remote"], ["新疆", 7]), "tariff.zones.remote"),
        (_bad(["zones", "remote"], ["新疆", "上海"]), "tariff.zones.remote"),
        (_bad(["prices", "remote"], KeyError), "tariff.prices.remote"),
        (_bad(["prices", "remote"], 5), "tariff.prices.remote"),
        (_bad(["prices", "remote", "step_g"], 0), "tariff.prices.remote.step_g"),
        (_bad(["prices", "remote", "step_g"], KeyError), "tariff.prices.remote.step_g"),
        (_bad(["prices", "remote", "first_fen"], -1), "tariff.prices.remote.first_fen"),
        (_bad(["prices", "remote", "first_fen"], 12.5), "tariff.prices.remote.first_fen"),
        (_bad(["prices", "remote", "first_fen"], True), "tariff.prices.remote.first_fen"),
        (_bad(["prices", "remote", "firstfen"], 100), "tariff.prices.remote.firstfen"),
        (_bad(["prices", "island"], DEFAULT_TARIFF["prices"]["local"]), "tariff.prices.island"),
        (_bad(["max_weight_g"], 0), "tariff.max_weight_g"),
        (_bad(["max_weight"], 100), "tariff.max_weight"),
    ],
)
def test_config_errors_name_the_key(data, named):
    with pytest.raises(ValueError) as caught:
        Tariff.from_config(data)
    assert named in str(caught.value)


def test_a_misspelt_province_is_caught_when_provinces_are_known():
    data = _bad(["zones", "remote"], ["新彊", "西藏"])
    Tariff.from_config(data)  # looks fine without a list of provinces
    with pytest.raises(ValueError, match="tariff.zones.remote"):
        Tariff.from_config(data, known_provinces=province_names())


def test_a_zone_price_checks_itself():
    with pytest.raises(ValueError, match="step_g"):
        ZonePrice(first_weight_g=1000, first_fen=800, step_g=0, step_fen=200)


_ZONES = ["浙江省", "上海市", "广东省", "新疆维吾尔自治区"]


@given(
    st.integers(min_value=1, max_value=30000),
    st.integers(min_value=1, max_value=30000),
    st.sampled_from(_ZONES),
)
def test_price_never_falls_as_weight_rises(a, b, province):
    tariff = Tariff.from_config(DEFAULT_TARIFF)
    light, heavy = sorted((a, b))
    low, high = tariff.quote(light, province), tariff.quote(heavy, province)
    assert low.price_fen <= high.price_fen
    assert low.charged_weight_g <= high.charged_weight_g
    assert high.charged_weight_g >= heavy
    assert high.price_fen == high.first_fen + high.extra_steps * high.step_fen


@given(
    st.integers(min_value=1, max_value=5000),
    st.integers(min_value=0, max_value=5000),
    st.integers(min_value=1, max_value=5000),
    st.integers(min_value=0, max_value=5000),
    st.integers(min_value=1, max_value=30000),
)
def test_any_valid_price_is_monotonic_and_rounds_up(first_g, first_fen, step_g, step_fen, weight):
    data = {
        "origin_province": "浙江",
        "zones": {},
        "prices": {"local": dict(first_weight_g=first_g, first_fen=first_fen, step_g=step_g, step_fen=step_fen)},
    }
    tariff = Tariff.from_config(data)
    quote = tariff.quote(weight, "浙江省")
    assert 0 <= quote.charged_weight_g - max(weight, first_g) < step_g
    if weight > 1:
        assert tariff.quote(weight - 1, "浙江").price_fen <= quote.price_fen
