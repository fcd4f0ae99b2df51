import asyncio
import socket

import pytest

from firmware_bridge import kerong_cu16 as cu16
from firmware_bridge.errors import BridgeError, LinkError, LinkOpenError, LinkTimeout
from firmware_bridge.link import SerialLink
from simulators.kerong_cu16 import KerongCU16Simulator


@pytest.fixture(params=["pty", "tcp"])
async def sim_url(request):
    sim = KerongCU16Simulator(boards=[0])
    transport = await (sim.serve_pty() if request.param == "pty" else sim.serve_tcp())
    yield sim, transport.url
    await sim.close()


def test_error_taxonomy():
    assert issubclass(LinkOpenError, BridgeError)
    assert issubclass(LinkTimeout, LinkError) and issubclass(LinkTimeout, TimeoutError)


async def test_write_then_read_a_reply(sim_url):
    sim, url = sim_url
    async with SerialLink(url, 19200) as link:
        await link.write(cu16.encode(cu16.status_request(0)))
        data = b""
        while len(data) < 9:
            chunk = await link.read(timeout=1.0)
            assert chunk, "no reply"
            data += chunk
    assert data == cu16.encode(sim.status_reply(0))
    assert not link.is_open


async def test_read_returns_nothing_on_silence_and_discard_drops_stale_bytes(sim_url):
    sim, url = sim_url
    link = SerialLink(url)
    await link.open()
    try:
        assert await link.read(timeout=0.02) == b""
        await link.write(cu16.encode(cu16.status_request(0)))
        await asyncio.sleep(0.05)
        assert await link.discard_input() == cu16.encode(sim.status_reply(0))
        assert await link.discard_input() == b""
    finally:
        await link.close()
        await link.close()  # closing twice is harmless


async def test_open_missing_device_raises_link_open_error(tmp_path):
    with pytest.raises(LinkOpenError):
        await SerialLink(str(tmp_path / "ttyNOPE")).open()


async def test_open_refused_socket_raises_link_open_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LinkOpenError):
        await SerialLink(f"socket://127.0.0.1:{port}", open_timeout=2).open()


async def test_pty_is_opened_exclusively():
    sim = KerongCU16Simulator()
    transport = await sim.serve_pty()
    try:
        async with SerialLink(transport.url):
            with pytest.raises(LinkOpenError):
                await SerialLink(transport.url).open()
    finally:
        await sim.close()


async def test_unopened_link_refuses_io():
    link = SerialLink("socket://127.0.0.1:9")
    with pytest.raises(LinkError):
        await link.write(b"\x02")
    with pytest.raises(LinkError):
        await link.read(timeout=0)


async def test_peer_going_away_is_a_link_error(sim_url):
    sim, url = sim_url
    link = SerialLink(url)
    await link.open()
    try:
        await sim.close()
        with pytest.raises(LinkError):
            for _ in range(3):  # the loss shows on the next read or, at the latest, the next write
                await link.read(timeout=0.2)
                await link.write(b"\x02\x00\x30\x03\x35")
    finally:
        await link.close()
