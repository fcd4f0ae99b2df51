"""WeChat Pay v2 barcode payment (付款码支付, "micropay"): pay, order query, reverse.

Wire format: ``POST`` an XML document ``<xml><k>v</k>...</xml>`` (UTF-8) to
``/pay/micropay``, ``/pay/orderquery`` and ``/secapi/pay/reverse`` (the last needs the merchant's
mutual-TLS certificate). Every request and every ``return_code=SUCCESS`` answer carries ``sign``:

    string = "&".join(f"{k}={v}" for k, v in sorted(params) if v != "" and k != "sign")
    sign   = MD5(string + "&key=" + api_key).hex().upper()                     # sign_type MD5
    sign   = HMAC_SHA256(key=api_key, msg=string + "&key=" + api_key).hex().upper()

``return_code`` is only the transport verdict; ``result_code`` / ``err_code`` / ``trade_state``
decide the trade. Mapping rules (spec rules-and-identifiers.md §4.1, §4.5):

* ``"paid"`` only on a signed, well-formed success for the same order and amount.
* Anything we cannot trust or that may still change (network error, timeout, HTTP 5xx,
  ``return_code=FAIL``, bad or missing signature, ``SYSTEMERROR``, ``BANKERROR``, ``ORDERPAID``)
  is ``"unknown"``: the state machine must query and, failing that, reverse.
* ``USERPAYING`` (password being entered) is ``"user_paying"``.
* Definite refusals (``NOTENOUGH``, ``AUTHCODEEXPIRE``, ``AUTH_CODE_INVALID``, ``ORDERREVERSED``...)
  are ``"failed"`` with the code as ``reason``.

The payment code is a one-minute bearer token: it is sent on the wire and nowhere else; logs show
only its last 4 digits.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from enum import Enum

import httpx

from lockers.acquirers import AcquirerAnswer, HttpAcquirer, ReverseAnswer, mask_code

log = logging.getLogger(__name__)

WECHAT_AUTH_CODE = re.compile(r"^1[0-5]\d{16}$")
ORDER_NO = re.compile(r"^[A-Za-z0-9_\-|*@]{1,32}$")
MAX_BODY_BYTES = 128


class SignType(str, Enum):
    MD5 = "MD5"
    HMAC_SHA256 = "HMAC-SHA256"


# micropay err_code -> outcome. Codes not listed are treated as "unknown" (query decides).
PAY_ERR_OUTCOME: dict[str, str] = {
    "USERPAYING": "user_paying",
    "SYSTEMERROR": "unknown",
    "BANKERROR": "unknown",
    "ORDERPAID": "unknown",  # the order number was already paid: query confirms, never a 2nd charge
    "NOTENOUGH": "failed",
    "AUTHCODEEXPIRE": "failed",
    "AUTH_CODE_INVALID": "failed",
    "AUTH_CODE_ERROR": "failed",
    "ORDERREVERSED": "failed",
    "ORDERCLOSED": "failed",
    "NOTSUPORTCARD": "failed",
    "BUYER_MISMATCH": "failed",
    "TRADE_ERROR": "failed",  # e.g. "用户没有输入支付密码", risk control refusal
    "PARAM_ERROR": "failed",
    "NOAUTH": "failed",
    "SIGNERROR": "failed",
    "LACK_PARAMS": "failed",
    "XML_FORMAT_ERROR": "failed",
    "REQUIRE_POST_METHOD": "failed",
    "NOT_UTF8": "failed",
    "APPID_NOT_EXIST": "failed",
    "MCHID_NOT_EXIST": "failed",
    "APPID_MCHID_NOT_MATCH": "failed",
    "OUT_TRADE_NO_USED": "failed",
    "INVALID_REQUEST": "failed",
}

# orderquery trade_state -> outcome.
TRADE_STATE_OUTCOME: dict[str, str] = {
    "SUCCESS": "paid",
    "USERPAYING": "user_paying",
    "ACCEPT": "user_paying",  # accepted, debit pending
    "NOTPAY": "user_paying",  # exists, not paid yet: keep polling, then reverse
    "PAYERROR": "failed",
    "CLOSED": "failed",
    "REVOKED": "failed",
    "REFUND": "failed",  # paid and refunded since: no money held for a service
}


# ---------------------------------------------------------------------------------------------
# Codec: pure functions, golden-testable


def sign_string(params: Mapping[str, str]) -> str:
    """The string that gets signed: sorted ``k=v`` of non-empty parameters except ``sign``."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")


def make_sign(params: Mapping[str, str], api_key: str, sign_type: SignType | str = "MD5") -> str:
    """WeChat v2 signature, upper-case hex."""
    data = (sign_string(params) + "&key=" + api_key).encode("utf-8")
    if SignType(sign_type) is SignType.HMAC_SHA256:
        return hmac.new(api_key.encode("utf-8"), data, hashlib.sha256).hexdigest().upper()
    return hashlib.md5(data).hexdigest().upper()


def verify_sign(params: Mapping[str, str], api_key: str, sign_type: SignType | str = "MD5") -> bool:
    """True when ``params["sign"]`` is present and matches (constant-time compare)."""
    got = params.get("sign", "")
    return bool(got) and hmac.compare_digest(got.upper(), make_sign(params, api_key, sign_type))


def to_xml(params: Mapping[str, str]) -> bytes:
    """``<xml><k>v</k>...</xml>``; ElementTree escapes ``&`` and ``<`` in values."""
    root = ET.Element("xml")
    for key, value in params.items():
        ET.SubElement(root, key).text = value
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


class XmlError(ValueError):
    """The body is not a flat WeChat ``<xml>`` document."""


def from_xml(body: bytes) -> dict[str, str]:
    """Parse a flat ``<xml>`` document; refuse DTDs (entity tricks) and nested elements."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise XmlError("DTD not allowed")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise XmlError(f"malformed XML: {err}") from err
    if root.tag != "xml":
        raise XmlError(f"root element is <{root.tag}>, expected <xml>")
    out: dict[str, str] = {}
    for child in root:
        if len(child):
            raise XmlError(f"nested element in <{child.tag}>")
        out[child.tag] = (child.text or "").strip()
    return out


# ---------------------------------------------------------------------------------------------
# Client


class WeChatV2Acquirer(HttpAcquirer):
    """HTTP client of a WeChat Pay v2 endpoint (``api.mch.weixin.qq.com`` or the simulator).

    ``timeout``: seconds for each HTTP exchange; a pay that times out is ``"unknown"``, never
    retried here (retrying a pay can charge twice; the state machine queries instead).
    ``cert``: ``(certfile, keyfile)`` of the merchant API certificate for ``/secapi/pay/reverse``;
    used only when this class builds its own client. ``client``: an injected ``httpx.AsyncClient``
    (not closed by :meth:`aclose`).
    """

    channel = "wechat"

    def __init__(
        self,
        base_url: str,
        *,
        appid: str,
        mch_id: str,
        api_key: str,
        sign_type: str = "MD5",
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        cert: tuple[str, str] | None = None,
        spbill_create_ip: str = "127.0.0.1",
    ) -> None:
        if not appid or not mch_id or not api_key:
            raise ValueError("appid, mch_id and api_key are required")
        if timeout <= 0:
            raise ValueError("timeout must be positive seconds")
        self.base_url = base_url.rstrip("/")
        self._endpoint = self.base_url
        self.appid = appid
        self.mch_id = mch_id
        self._api_key = api_key
        self.sign_type = SignType(sign_type)
        self.timeout = timeout
        self.spbill_create_ip = spbill_create_ip
        self._owns_client = client is None
        if client is None:
            verify: ssl.SSLContext | bool = True
            if cert is not None:
                verify = ssl.create_default_context()
                verify.load_cert_chain(*cert)
            client = httpx.AsyncClient(timeout=timeout, verify=verify)
        self._client = client

    def __repr__(self) -> str:
        return f"WeChatV2Acquirer({self.base_url!r}, mch_id={self.mch_id!r}, api_key=***)"

    # -- public API ---------------------------------------------------------------------------

    async def pay(
        self, order_no: str, amount_fen: int, auth_code: str, subject: str
    ) -> AcquirerAnswer:
        """Submit a micropay. Sent once; any doubt comes back as ``"unknown"``/``"user_paying"``."""
        _check_order_no(order_no)
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
            raise ValueError("amount_fen must be a positive integer (fen)")
        if not isinstance(auth_code, str) or not WECHAT_AUTH_CODE.match(auth_code):
            raise ValueError("not a WeChat payment code (18 digits starting 10-15)")
        if not subject or len(subject.encode("utf-8")) > MAX_BODY_BYTES:
            raise ValueError(f"subject must be 1..{MAX_BODY_BYTES} UTF-8 bytes")
        params = {
            "body": subject,
            "out_trade_no": order_no,
            "total_fee": str(amount_fen),
            "spbill_create_ip": self.spbill_create_ip,
            "auth_code": auth_code,
        }
        log.info("wechat pay %s amount=%d code=%s", order_no, amount_fen, mask_code(auth_code))
        reply = await self._call("/pay/micropay", params, order_no)
        if isinstance(reply, AcquirerAnswer):
            answer = reply
        elif reply.get("result_code") == "SUCCESS":
            answer = self._success(reply, order_no, amount_fen)
        else:
            code = reply.get("err_code", "") or "UNSPECIFIED"
            answer = AcquirerAnswer(PAY_ERR_OUTCOME.get(code, "unknown"), reason=code)
        log.info("wechat pay %s -> %s (%s)", order_no, answer.outcome, answer.reason)
        return answer

    async def query(self, order_no: str) -> AcquirerAnswer:
        """Ask for the order's ``trade_state``; never charges."""
        _check_order_no(order_no)
        reply = await self._call("/pay/orderquery", {"out_trade_no": order_no}, order_no)
        if isinstance(reply, AcquirerAnswer):
            answer = reply
        elif reply.get("result_code") != "SUCCESS":
            # ORDERNOTEXIST may only mean the pay has not landed yet: let reverse close it.
            answer = AcquirerAnswer("unknown", reason=reply.get("err_code") or "UNSPECIFIED")
        else:
            state = reply.get("trade_state", "")
            outcome = TRADE_STATE_OUTCOME.get(state, "unknown")
            if outcome == "paid":
                answer = self._success(reply, order_no, None)
            else:
                answer = AcquirerAnswer(outcome, reason=state or "NO_TRADE_STATE")
        log.info("wechat query %s -> %s (%s)", order_no, answer.outcome, answer.reason)
        return answer

    async def reverse(self, order_no: str) -> ReverseAnswer:
        """Reverse (撤销): close an unpaid order or refund a paid one.

        The v2 reverse answer does not say which, so the order is queried first: a prior
        ``SUCCESS`` makes a successful reverse ``"refunded"``, anything else ``"reversed"``.
        (A payment landing between the two calls is still refunded by WeChat; only the label
        would be wrong, never the money.) Callers must wait 15 s after the pay call.
        """
        _check_order_no(order_no)
        before = await self.query(order_no)
        reply = await self._call("/secapi/pay/reverse", {"out_trade_no": order_no}, order_no)
        if isinstance(reply, AcquirerAnswer):
            answer = ReverseAnswer("unknown" if reply.reason == "bad_signature" else "retry",
                                   reason=reply.reason)
        elif reply.get("result_code") == "SUCCESS" and reply.get("recall", "N") != "Y":
            answer = ReverseAnswer("refunded" if before.outcome == "paid" else "reversed")
        else:
            answer = _reverse_failure(reply)
        log.info("wechat reverse %s -> %s (%s)", order_no, answer.outcome, answer.reason)
        return answer

    # -- internals ----------------------------------------------------------------------------

    def _success(
        self, reply: dict[str, str], order_no: str, amount_fen: int | None
    ) -> AcquirerAnswer:
        """A success is believed only if it is for this order and (for pay) this amount."""
        if reply.get("out_trade_no") not in (None, order_no):
            return AcquirerAnswer("unknown", reason="order_mismatch")
        if amount_fen is not None and reply.get("total_fee") not in (None, str(amount_fen)):
            return AcquirerAnswer("unknown", reason="amount_mismatch")
        return AcquirerAnswer("paid", transaction_id=reply.get("transaction_id") or None)

    async def _call(
        self, path: str, params: dict[str, str], order_no: str
    ) -> dict[str, str] | AcquirerAnswer:
        """POST a signed request; the parsed, verified reply, or an ``"unknown"`` answer."""
        full = {"appid": self.appid, "mch_id": self.mch_id, "nonce_str": secrets.token_hex(16),
                **params}
        if self.sign_type is not SignType.MD5:
            full["sign_type"] = self.sign_type.value
        full["sign"] = make_sign(full, self._api_key, self.sign_type)
        try:
            resp = await self._client.post(
                self.base_url + path, content=to_xml(full), timeout=self.timeout,
                headers={"Content-Type": "text/xml; charset=utf-8"},
            )
        except httpx.TimeoutException:
            log.warning("wechat %s %s: timed out after %.1f s", path, order_no, self.timeout)
            return AcquirerAnswer("unknown", reason="timeout")
        except httpx.HTTPError as err:
            log.warning("wechat %s %s: network error %s", path, order_no, type(err).__name__)
            return AcquirerAnswer("unknown", reason="network")
        if resp.status_code != 200:
            log.warning("wechat %s %s: HTTP %d", path, order_no, resp.status_code)
            return AcquirerAnswer("unknown", reason=f"http_{resp.status_code}")
        try:
            reply = from_xml(resp.content)
        except XmlError as err:
            log.warning("wechat %s %s: %s", path, order_no, err)
            return AcquirerAnswer("unknown", reason="bad_xml")
        if reply.get("return_code") != "SUCCESS":
            # Transport-level refusal: unsigned, so not trusted either way.
            log.warning("wechat %s %s: return_code FAIL: %s", path, order_no,
                        reply.get("return_msg", "")[:80])
            return AcquirerAnswer("unknown", reason="return_fail")
        if not verify_sign(reply, self._api_key, self.sign_type):
            log.error("wechat %s %s: response signature does not verify", path, order_no)
            return AcquirerAnswer("unknown", reason="bad_signature")
        theirs = (reply.get("appid", self.appid), reply.get("mch_id", self.mch_id))
        if theirs != (self.appid, self.mch_id):
            log.error("wechat %s %s: answer for another merchant", path, order_no)
            return AcquirerAnswer("unknown", reason="merchant_mismatch")
        return reply


def _reverse_failure(reply: dict[str, str]) -> ReverseAnswer:
    """recall=Y, SYSTEMERROR, USERPAYING: call again; ORDERNOTEXIST: nothing to reverse (the pay
    never reached WeChat and its code expires within a minute); anything else needs a person."""
    code = reply.get("err_code", "") or ("RECALL" if reply.get("recall") == "Y" else "UNSPECIFIED")
    if reply.get("recall") == "Y" or code in {"SYSTEMERROR", "USERPAYING", "BANKERROR"}:
        return ReverseAnswer("retry", reason=code)
    if code == "ORDERNOTEXIST":
        return ReverseAnswer("reversed", reason=code)
    return ReverseAnswer("unknown", reason=code)  # REVERSE_EXPIRE, PARAM_ERROR, SIGNERROR...


def _check_order_no(order_no: str) -> None:
    if not isinstance(order_no, str) or not ORDER_NO.match(order_no):
        raise ValueError("order_no must be 1-32 characters of [A-Za-z0-9_-|*@]")


__all__ = [
    "WeChatV2Acquirer", "SignType", "make_sign", "verify_sign", "sign_string", "to_xml",
    "from_xml", "XmlError", "PAY_ERR_OUTCOME", "TRADE_STATE_OUTCOME",
]
