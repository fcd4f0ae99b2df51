from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hal.errors import DeviceIOError, DeviceTimeout, DeviceUnavailable
from hal.sms import LogSmsGateway, SmsMessage, sms_gateway

MESSAGE = SmsMessage(phone="13812345678", phone_masked="138****5678", template="pickup_notice",
                     text="取件码 12345678", params={"code": "12345678", "compartment": "A05"})


class Gateway(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200
    delay = 0.0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append({"body": body, "auth": self.headers.get("Authorization")})
        time.sleep(type(self).delay)
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() waits for slow handlers, so no socket outlives the test


@pytest.fixture
def gateway():
    Gateway.received, Gateway.status, Gateway.delay = [], 200, 0.0
    server = Server(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/notify"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_webhook_posts_phone_text_and_parameters(gateway):
    sms = sms_gateway("webhook", url=gateway, token="s3cret")
    try:
        await sms.send(MESSAGE)
    finally:
        await sms.close()
    assert Gateway.received == [{"body": {"phone": "13812345678", "template": "pickup_notice",
                                          "text": "取件码 12345678",
                                          "params": {"code": "12345678", "compartment": "A05"}},
                                 "auth": "Bearer s3cret"}]


async def test_webhook_refusal_and_timeout_are_errors(gateway):
    Gateway.status = 500
    sms = sms_gateway("webhook", url=gateway, timeout=0.3)
    try:
        with pytest.raises(DeviceIOError, match="HTTP 500"):
            await sms.send(MESSAGE)
        Gateway.status, Gateway.delay = 200, 0.8
        with pytest.raises(DeviceTimeout):
            await sms.send(MESSAGE)
    finally:
        await sms.close()


async def test_webhook_unreachable_is_an_error():
    sms = sms_gateway("webhook", url="http://127.0.0.1:9/notify", timeout=1)
    try:
        with pytest.raises(DeviceIOError):
            await sms.send(MESSAGE)
    finally:
        await sms.close()


async def test_log_backend_keeps_messages_and_never_logs_the_text(caplog):
    sms = LogSmsGateway(keep=2)
    caplog.set_level("INFO")
    for _ in range(3):
        await sms.send(MESSAGE)
    assert len(sms.recent) == 2 and sms.recent[0]["to"] == "138****5678"
    assert "12345678" not in caplog.text and "13812345678" not in caplog.text
    assert "138****5678" in caplog.text and "13812345678" not in repr(MESSAGE)


def test_unknown_backend():
    with pytest.raises(DeviceUnavailable):
        sms_gateway("carrier-pigeon")
