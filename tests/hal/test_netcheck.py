"""The payment network check: real TCP connections on loopback, a fake monotonic clock for staleness."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hal.netcheck import Reachability, endpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_of_a_url():
    assert endpoint("https://api.mch.weixin.qq.com") == ("api.mch.weixin.qq.com", 443)
    assert endpoint("http://127.0.0.1:8123/pay") == ("127.0.0.1", 8123)
    with pytest.raises(ValueError):
        endpoint("ftp://x")
    with pytest.raises(ValueError):
        Reachability([])


async def test_online_while_an_endpoint_answers_and_offline_when_it_goes():
    now = [100.0]
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    net = Reachability([("127.0.0.1", free_port()), ("127.0.0.1", port)], interval=10, timeout=0.5,
                       monotonic=lambda: now[0])
    assert not net.online()  # nothing checked yet: offline
    assert await net.check() and net.online()
    server.close()
    await server.wait_closed()
    now[0] += 5
    assert await net.check()  # nothing answered, but the last answer holds until it is stale
    now[0] += net.stale_after
    assert not await net.check() and not net.online()


async def test_nothing_listening_is_offline_from_the_start():
    net = Reachability([("127.0.0.1", free_port())], interval=10, timeout=0.5)
    await net.start()
    try:
        assert not net.online()
    finally:
        await net.stop()
