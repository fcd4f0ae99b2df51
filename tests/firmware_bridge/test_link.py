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


async def test_a_device_that_takes_no_data_times_out_without_freezing_the_loop():
    """pyserial retries a non-blocking write into a full OS queue in a busy loop; the link must wait
    for room instead, so other tasks keep running and a stuck device ends in LinkTimeout."""
    import os
    import tty

    controller, device = os.openpty()
    tty.setraw(device)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    link = SerialLink(os.ttyname(device), 115200, write_timeout=0.3, exclusive=False)
    try:
        await link.open()
        with pytest.raises(LinkTimeout):
            await link.write(bytes(200_000))  # nobody reads the controller side
        assert ticks >= 10, "the event loop was blocked while the write waited"
    finally:
        task.cancel()
        await link.close()
        os.close(controller)
        os.close(device)


async def test_a_long_write_arrives_whole_when_the_device_reads():
    import os
    import tty

    controller, device = os.openpty()
    tty.setraw(device)
    tty.setraw(controller)
    os.set_blocking(controller, False)
    payload = bytes(range(256)) * 400  # 100 KB, far more than a pty buffers
    received = bytearray()
    loop = asyncio.get_running_loop()

    def drain() -> None:
        try:
            received.extend(os.read(controller, 65536))
        except BlockingIOError:
            pass

    loop.add_reader(controller, drain)
    link = SerialLink(os.ttyname(device), 115200, write_timeout=2.0, exclusive=False)
    try:
        await link.open()
        await link.write(payload)
        for _ in range(200):
            if len(received) >= len(payload):
                break
            await asyncio.sleep(0.01)
        assert bytes(received) == payload
    finally:
        loop.remove_reader(controller)
        await link.close()
        os.close(controller)
        os.close(device)
