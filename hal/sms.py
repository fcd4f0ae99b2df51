"""SMS gateways: how pickup notices reach residents.

Subclasses must override ``_send(message)``. Backends: ``webhook`` (POST JSON to a configured URL,
for an operator's SMS platform) and ``log`` (for the demo: logs the masked number and keeps the last
messages in memory so the demo page can show "the resident's phone"; the text holds a pickup code,
so it is never written to the log).
"""

from __future__ import annotations

import abc
import collections
import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from hal.errors import DeviceIOError, DeviceTimeout, DeviceUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmsMessage:
    phone: str
    phone_masked: str
    template: str
    text: str
    params: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never let a repr leak the number or the code into a log
        return f"SmsMessage(to={self.phone_masked!r}, template={self.template!r})"


class SmsGateway(abc.ABC):
    """Sends one message; raises ``DeviceIOError``/``DeviceTimeout`` when it was not accepted."""

    async def send(self, message: SmsMessage) -> None:
        await self._send(message)
        log.info("sms %s sent to %s", message.template, message.phone_masked)

    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def _send(self, message: SmsMessage) -> None: ...


class LogSmsGateway(SmsGateway):
    """Demo backend: nothing leaves the machine; the last ``keep`` messages stay in memory."""

    def __init__(self, keep: int = 20) -> None:
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)

    async def _send(self, message: SmsMessage) -> None:
        self.recent.append({"to": message.phone_masked, "template": message.template, "text": message.text})


class WebhookSmsGateway(SmsGateway):
    """POSTs ``{"phone", "template", "text", "params"}`` as JSON to ``url``; any 2xx is accepted.

    ``timeout`` is in seconds. ``token``, if set, goes in an ``Authorization: Bearer`` header.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, token: str | None = None) -> None:
        import httpx

        self.url = url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(timeout=timeout, headers=headers)
        self._httpx = httpx

    async def _send(self, message: SmsMessage) -> None:
        body = {"phone": message.phone, "template": message.template, "text": message.text,
                "params": message.params}
        try:
            response = await self._client.post(self.url, json=body)
        except self._httpx.TimeoutException as err:
            raise DeviceTimeout(f"SMS gateway did not answer within {self._client.timeout.read} s") from err
        except self._httpx.HTTPError as err:
            raise DeviceIOError(f"SMS gateway unreachable: {type(err).__name__}") from err
        if not 200 <= response.status_code < 300:
            raise DeviceIOError(f"SMS gateway refused the message: HTTP {response.status_code}")

    async def close(self) -> None:
        await self._client.aclose()


BACKENDS: dict[str, str] = {
    "log": "hal.sms:LogSmsGateway",
    "webhook": "hal.sms:WebhookSmsGateway",
}


def sms_gateway(backend: str, **options: Any) -> SmsGateway:
    try:
        module_name, _, class_name = BACKENDS[backend].partition(":")
    except KeyError:
        raise DeviceUnavailable(f"unknown SMS backend {backend!r}; known: {', '.join(sorted(BACKENDS))}") from None
    return getattr(importlib.import_module(module_name), class_name)(**options)
