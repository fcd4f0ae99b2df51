import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lockers.acquirers import AcquirerAnswer
from lockers.acquirers.aggregator import AggregatorAcquirer
from lockers.acquirers.alipay import AlipayAcquirer
from lockers.acquirers.factory import build_acquirers
from lockers.acquirers.wechat_v2 import WeChatV2Acquirer
from simulators.pay_gateway import run_pay_gateway

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
PUBLIC_PEM = _KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def wechat(**kw):
    return {"protocol": "wechat-v2", "url": "https://api.mch.weixin.qq.com", "appid": "wx1",
            "mch_id": "10000100", "api_key": "k" * 32, **kw}


def alipay(**kw):
    return {"protocol": "alipay", "url": "https://openapi.alipay.com/gateway.do",
            "app_id": "2021000000000001", "private_key": PRIVATE_PEM,
            "alipay_public_key": PUBLIC_PEM, **kw}


def aggregator(**kw):
    return {"protocol": "aggregator", "url": "https://agg.example/api", "merchant_id": "M1",
            "key": "secret-agg-key", **kw}


async def test_builds_each_protocol_with_a_shared_client():
    async with httpx.AsyncClient() as client:
        built = build_acquirers({"wechat": wechat(timeout=3), "alipay": alipay(),
                                 "ecny": aggregator(pay_type="DC_MICROPAY")}, client=client)
        assert isinstance(built["wechat"], WeChatV2Acquirer) and built["wechat"].timeout == 3
        assert isinstance(built["alipay"], AlipayAcquirer) and built["alipay"].channel == "alipay"
        assert isinstance(built["ecny"], AggregatorAcquirer) and built["ecny"].channel == "ecny"
        assert all(a._client is client for a in built.values())
        assert {ch: a.channel for ch, a in built.items()} == {
            "wechat": "wechat", "alipay": "alipay", "ecny": "ecny"}


async def test_key_files_are_read(tmp_path):
    (tmp_path / "app.pem").write_text(PRIVATE_PEM)
    (tmp_path / "ali.pem").write_text(PUBLIC_PEM)
    (tmp_path / "agg.key").write_text("secret-from-file\n")
    (tmp_path / "wx.key").write_text("  wxkey  \n")
    cfg = {
        "wechat": {k: v for k, v in wechat(api_key_file=str(tmp_path / "wx.key")).items()
                   if k != "api_key"},
        "alipay": {"protocol": "alipay", "url": "https://openapi.alipay.com/gateway.do",
                   "app_id": "1", "private_key_file": str(tmp_path / "app.pem"),
                   "alipay_public_key_file": str(tmp_path / "ali.pem")},
        "unionpay": {"protocol": "aggregator", "url": "https://agg.example", "merchant_id": "M",
                     "key_file": str(tmp_path / "agg.key"), "pay_type": "UNIONPAY_MICROPAY"},
    }
    async with httpx.AsyncClient() as client:
        built = build_acquirers(cfg, client=client)
    assert built["wechat"]._api_key == "wxkey"
    assert built["unionpay"]._key == "secret-from-file" and built["unionpay"].channel == "unionpay"


@pytest.mark.parametrize("cfg, message", [
    ({"wechat": {"url": "https://x"}}, r"\[payments.acquirers.wechat\]: protocol is required"),
    ({"wechat": wechat(protocol="wechat-v3")}, "protocol = 'wechat-v3': expected one of"),
    ({"alipay": wechat()}, "serves the 'wechat' channel only"),
    ({"wechat": wechat(url="ftp://x")}, "http:// or https://"),
    ({"wechat": wechat(url="")}, "url must be a non-empty string"),
    ({"wechat": wechat(timeout=0)}, "timeout must be a positive"),
    ({"wechat": wechat(timeout="10")}, "timeout must be a positive"),
    ({"wechat": wechat(sign_type="SHA1")}, "sign_type = 'SHA1'"),
    ({"wechat": wechat(cert_file="/x.pem")}, "cert_file and key_file go together"),
    ({"wechat": wechat(cert_file="/no/such.pem", key_file="/no/such.key")}, "not a readable file"),
    ({"wechat": wechat(api_key_file="/x")}, "api_key or api_key_file, not both"),
    ({"wechat": wechat(apikey="typo")}, "unknown setting.s. apikey"),
    ({"wechat": {k: v for k, v in wechat().items() if k != "mch_id"}}, "mch_id is required"),
    ({"alipay": alipay(private_key="garbage!")}, "private_key: neither a PEM key"),
    ({"alipay": alipay(alipay_public_key=PRIVATE_PEM)}, "alipay_public_key: not a readable public"),
    ({"alipay": {k: v for k, v in alipay().items() if k != "private_key"}},
     "private_key or private_key_file is required"),
    ({"alipay": alipay(private_key_file="/no/such.pem", private_key=None)}, "not both"),
    ({"ecny": aggregator(pay_type="dc micro")}, "pay_type = 'dc micro'"),
    ({"ecny": aggregator(key_file="/no/such.key", key=None) | {"key": None}}, "not both"),
    ({"ecny": "aggregator"}, "must be a table"),
])
def test_bad_config_is_a_clear_value_error(cfg, message):
    with pytest.raises(ValueError, match=message) as err:
        build_acquirers(cfg)
    assert "k" * 32 not in str(err.value) and "secret-agg-key" not in str(err.value)
    assert "PRIVATE KEY" not in str(err.value)


def test_unreadable_secret_file(tmp_path):
    cfg = {"ecny": {k: v for k, v in aggregator().items() if k != "key"}
           | {"key_file": str(tmp_path / "missing.key")}}
    with pytest.raises(ValueError, match=r"cannot read key_file"):
        build_acquirers(cfg)
    (tmp_path / "empty.key").write_text("\n")
    cfg["ecny"]["key_file"] = str(tmp_path / "empty.key")
    with pytest.raises(ValueError, match="is empty"):
        build_acquirers(cfg)


async def test_built_backends_pay_against_the_simulator():
    gw = await run_pay_gateway()
    try:
        cfg = {
            "wechat": {"protocol": "wechat-v2", "url": gw.url, "appid": gw.gateway.appid,
                       "mch_id": gw.gateway.mch_id, "api_key": gw.gateway.api_key, "timeout": 2},
            "alipay": {"protocol": "alipay", "url": gw.alipay_url, "app_id": gw.alipay_app_id,
                       "private_key": gw.app_private_key_pem,
                       "alipay_public_key": gw.alipay_public_key_pem, "timeout": 2},
            "ecny": {"protocol": "aggregator", "url": gw.agg_url,
                     "merchant_id": gw.agg_merchant_id, "key": gw.agg_key, "timeout": 2},
        }
        built = build_acquirers(cfg)
        try:
            codes = {"wechat": "134567890123456789", "alipay": "289431869362714645",
                     "ecny": "0112345678901234567"}
            for channel, acq in built.items():
                ans = await acq.pay(f"F_{channel}", 100, codes[channel], "邮费")
                assert ans.outcome == "paid", channel
                assert gw.orders[f"F_{channel}"].charges == 1
            assert await built["alipay"].query("nope") == AcquirerAnswer(
                "unknown", reason="ACQ.TRADE_NOT_EXIST")
        finally:
            for acq in built.values():
                await acq.aclose()
    finally:
        await gw.close()
