"""Acquirer backends from configuration: one ``[payments.acquirers.<channel>]`` table each.

The table name is the channel whose payment codes the backend takes (``wechat``, ``alipay``,
``ecny``); ``protocol`` chooses the backend::

    [payments.acquirers.wechat]
    protocol = "wechat-v2"
    url = "https://api.mch.weixin.qq.com"
    appid = "wx2421b1c4370ec43b"
    mch_id = "10000100"
    api_key_file = "/etc/postkiosk/wechat.key"     # or api_key = "..."
    sign_type = "HMAC-SHA256"                      # optional, default MD5
    cert_file = "/etc/postkiosk/apiclient_cert.pem"  # optional pair, for /secapi/pay/reverse
    key_file = "/etc/postkiosk/apiclient_key.pem"
    timeout = 10                                   # optional, seconds

    [payments.acquirers.alipay]
    protocol = "alipay"
    url = "https://openapi.alipay.com/gateway.do"
    app_id = "2021000000000001"
    private_key_file = "/etc/postkiosk/alipay_app_private.pem"   # or private_key = PEM / base64
    alipay_public_key_file = "/etc/postkiosk/alipay_public.pem"  # or alipay_public_key = ...

    [payments.acquirers.ecny]
    protocol = "aggregator"
    url = "https://aggregator.example/api/barcode"
    merchant_id = "M100000001"
    key_file = "/etc/postkiosk/aggregator.key"     # or key = "..."
    pay_type = "DC_MICROPAY"                       # optional

Every table is checked before any backend is built, so a bad file raises one :class:`ValueError`
naming the table and the setting, and no HTTP client is left open. Unknown settings are refused
(a typo must not silently drop, say, the certificate). Secrets read from files are stripped of
surrounding whitespace; no secret ever appears in an error message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from lockers.acquirers import Acquirer
from lockers.acquirers.aggregator import PAY_TYPE, AggregatorAcquirer
from lockers.acquirers.alipay import AlipayAcquirer, load_private_key, load_public_key
from lockers.acquirers.wechat_v2 import SignType, WeChatV2Acquirer

PROTOCOLS = ("wechat-v2", "alipay", "aggregator")
_COMMON = {"protocol", "url", "timeout"}
_ALLOWED: dict[str, set[str]] = {
    "wechat-v2": _COMMON | {"appid", "mch_id", "api_key", "api_key_file", "sign_type",
                            "cert_file", "key_file", "spbill_create_ip"},
    "alipay": _COMMON | {"app_id", "private_key", "private_key_file", "alipay_public_key",
                         "alipay_public_key_file"},
    "aggregator": _COMMON | {"merchant_id", "key", "key_file", "pay_type"},
}


def build_acquirers(
    config: Mapping[str, Mapping[str, Any]], *, client: httpx.AsyncClient | None = None
) -> dict[str, Acquirer]:
    """Backends for the ``[payments.acquirers]`` table: channel -> acquirer.

    ``client``: one ``httpx.AsyncClient`` shared by every backend (tests, the demo); by default
    each backend builds and owns its own (WeChat with its mutual-TLS certificate). Raises
    ValueError for a bad table; nothing is built then.
    """
    if not isinstance(config, Mapping):
        raise ValueError("[payments.acquirers] must be a table of channel tables")
    builders: dict[str, Callable[[], Acquirer]] = {}
    for channel, table in config.items():
        builders[channel] = _plan(str(channel), table, client)
    return {channel: build() for channel, build in builders.items()}


def _plan(channel: str, table: Any, client: httpx.AsyncClient | None) -> Callable[[], Acquirer]:
    """Check one table completely; return what builds its backend (no I/O left to fail)."""
    where = f"[payments.acquirers.{channel}]"
    if not channel:
        raise ValueError("[payments.acquirers]: empty channel name")
    if not isinstance(table, Mapping):
        raise ValueError(f"{where} must be a table")
    cfg = _Table(where, table)
    protocol = cfg.text("protocol")
    if protocol not in PROTOCOLS:
        raise ValueError(f"{where} protocol = {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    unknown = sorted(set(table) - _ALLOWED[protocol])
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)} for protocol {protocol}")
    url = cfg.url()
    timeout = cfg.timeout()
    if protocol == "wechat-v2":
        return _plan_wechat(channel, cfg, url, timeout, client)
    if protocol == "alipay":
        private = load_private_key(cfg.key_material("private_key"),
                                   f"{where} private_key")
        public = load_public_key(cfg.key_material("alipay_public_key"),
                                 f"{where} alipay_public_key")
        app_id = cfg.text("app_id")
        return lambda: AlipayAcquirer(url, app_id=app_id, private_key=private,
                                      alipay_public_key=public, channel=channel,
                                      timeout=timeout, client=client)
    merchant_id = cfg.text("merchant_id")
    key = cfg.secret("key")
    pay_type = cfg.text("pay_type", "DC_MICROPAY")
    if not PAY_TYPE.match(pay_type):
        raise ValueError(f"{where} pay_type = {pay_type!r}: 1-32 characters of [A-Z0-9_]")
    return lambda: AggregatorAcquirer(url, merchant_id=merchant_id, key=key, pay_type=pay_type,
                                      channel=channel, timeout=timeout, client=client)


def _plan_wechat(channel: str, cfg: _Table, url: str, timeout: float,
                 client: httpx.AsyncClient | None) -> Callable[[], Acquirer]:
    where = cfg.where
    if channel != WeChatV2Acquirer.channel:
        raise ValueError(f"{where}: protocol wechat-v2 serves the 'wechat' channel only")
    appid, mch_id = cfg.text("appid"), cfg.text("mch_id")
    api_key = cfg.secret("api_key")
    sign_type = cfg.text("sign_type", "MD5")
    try:
        SignType(sign_type)
    except ValueError:
        raise ValueError(f"{where} sign_type = {sign_type!r}: expected MD5 or HMAC-SHA256") from None
    cert: tuple[str, str] | None = None
    if ("cert_file" in cfg.table) != ("key_file" in cfg.table):
        raise ValueError(f"{where}: cert_file and key_file go together (mutual-TLS certificate)")
    if "cert_file" in cfg.table:
        cert = (cfg.existing_file("cert_file"), cfg.existing_file("key_file"))
    ip = cfg.text("spbill_create_ip", "127.0.0.1")
    return lambda: WeChatV2Acquirer(url, appid=appid, mch_id=mch_id, api_key=api_key,
                                    sign_type=sign_type, timeout=timeout, client=client,
                                    cert=cert, spbill_create_ip=ip)


class _Table:
    """Typed reads of one acquirer table, each error naming the table and the setting."""

    def __init__(self, where: str, table: Mapping[str, Any]) -> None:
        self.where = where
        self.table = table

    def text(self, name: str, default: str | None = None) -> str:
        value = self.table.get(name, default)
        if value is None:
            raise ValueError(f"{self.where}: {name} is required")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{self.where}: {name} must be a non-empty string")
        return value.strip()

    def url(self) -> str:
        text = self.text("url")
        try:
            parsed = httpx.URL(text)
        except httpx.InvalidURL as err:
            raise ValueError(f"{self.where}: url is not a URL: {err}") from err
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"{self.where}: url must be an http:// or https:// URL with a host")
        return text

    def timeout(self) -> float:
        value = self.table.get("timeout", 10.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{self.where}: timeout must be a positive number of seconds")
        return float(value)

    def existing_file(self, name: str) -> str:
        path = self.text(name)
        if not Path(path).is_file():
            raise ValueError(f"{self.where}: {name} {path!r} is not a readable file")
        return path

    def _one_of(self, name: str) -> tuple[str, str]:
        """(which setting, its value) for ``name`` or ``name_file``, exactly one given."""
        inline, file = name in self.table, f"{name}_file" in self.table
        if inline and file:
            raise ValueError(f"{self.where}: give {name} or {name}_file, not both")
        if not inline and not file:
            raise ValueError(f"{self.where}: {name} or {name}_file is required")
        which = name if inline else f"{name}_file"
        value = self.table[which]
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{self.where}: {which} must be a non-empty string")
        return which, value

    def secret(self, name: str) -> str:
        """A shared secret, inline or from a file (read now, stripped)."""
        which, value = self._one_of(name)
        if which == name:
            return value
        try:
            secret = Path(value).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"{self.where}: cannot read {which} {value!r}: "
                             f"{getattr(err, 'strerror', None) or type(err).__name__}") from None
        if not secret:
            raise ValueError(f"{self.where}: {which} {value!r} is empty")
        return secret

    def key_material(self, name: str) -> str | Path:
        """Key text (PEM or base64 DER) given inline, or the Path of a key file."""
        which, value = self._one_of(name)
        if which == name:
            return value
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"{self.where}: {which} {value!r} is not a readable file")
        return path


__all__ = ["build_acquirers", "PROTOCOLS"]
