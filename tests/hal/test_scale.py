import asyncio
from decimal import Decimal

import pytest

from firmware_bridge.scale_lines import Kind, ScaleReading, Stability, Unit
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout, DeviceUnavailable
from hal.scale import BACKENDS, Scale, ScaleOverload, ScaleUnstable, Weight, scale
from simulators.scale import run_scale_sim

ST, US, OL = Stability.STABLE, Stability.UNSTABLE, Stability.OVERLOAD


@pytest.fixture(params=["pty", "tcp"])
async def sim(request):
    running = await run_scale_sim(request.param, rate_hz=50, settle_lines=5)
    yield running
    await running.close()


def line(stability: Stability, kg: str, kind: Kind = Kind.GROSS) -> ScaleReading:
    return ScaleReading(stability, kind, Decimal(kg), Unit.KG)


async def feed_lines(sim, readings, pause: float = 0.02) -> None:
    for reading in readings:
        sim.sim.send_reading(reading)
        await asyncio.sleep(pause)


async def test_a_parcel_is_weighed_once_it_has_settled(sim):
    async with scale("serial-lines", url=sim.url) as s:
        sim.sim.put_weight(1234)
        weight = await s.read_stable(timeout=2)
    assert (weight.grams, weight.stable, weight.overload, weight.kind) == (1234, True, False, "gross")
    sent = [bytes(b) for b in sim.sim.sent]
    assert any(b.startswith(b"US,") for b in sent)  # it did wobble first


async def test_unstable_lines_and_changing_stable_lines_are_not_accepted(sim):
    sim.sim.stop_streaming()
    async with scale("serial-lines", url=sim.url, stable_lines=3) as s:
        task = asyncio.create_task(s.read_stable(timeout=3))
        await asyncio.sleep(0.05)
        await feed_lines(sim, [line(US, "1.000"), line(ST, "1.200"), line(ST, "1.200"), line(US, "1.200"),
                               line(ST, "1.234"), line(ST, "1.234"), line(ST, "1.235"), line(ST, "1.234"),
                               line(ST, "1.234")])
        assert not task.done()  # never three equal stable lines in a row
        await feed_lines(sim, [line(ST, "1.234")])
        weight = await asyncio.wait_for(task, 1)
    assert weight.grams == 1234


async def test_tare_lines_do_not_interrupt_a_run(sim):
    sim.sim.stop_streaming()
    async with scale("serial-lines", url=sim.url, stable_lines=2) as s:
        task = asyncio.create_task(s.read_stable(timeout=3))
        await asyncio.sleep(0.05)
        await feed_lines(sim, [line(ST, "0.500", Kind.NET), line(ST, "0.120", Kind.TARE), line(ST, "0.500", Kind.NET)])
        weight = await asyncio.wait_for(task, 1)
    assert (weight.grams, weight.kind) == (500, "net")


async def test_the_time_window_is_measured_on_the_scale_clock(sim):
    times = iter([10.0, 10.4, 10.8, 11.0, 11.2])
    sim.sim.stop_streaming()
    async with scale("serial-lines", url=sim.url, stable_lines=2, stable_for=1.0, clock=lambda: next(times)) as s:
        task = asyncio.create_task(s.read_stable(timeout=3))
        await asyncio.sleep(0.05)
        await feed_lines(sim, [line(ST, "2.000")] * 3)
        assert not task.done()  # three equal lines, but only 0.8 s apart
        await feed_lines(sim, [line(ST, "2.000")])
        weight = await asyncio.wait_for(task, 1)
    assert (weight.grams, weight.at) == (2000, 11.0)


async def test_readings_from_before_the_call_are_ignored(sim):
    sim.sim.put_weight(500)
    async with scale("serial-lines", url=sim.url) as s:
        await asyncio.sleep(0.3)  # stable 0.500 kg lines pile up unread
        sim.sim.put_weight(1234)
        weight = await s.read_stable(timeout=2)
    assert weight.grams == 1234


async def test_overload(sim):
    async with scale("serial-lines", url=sim.url) as s:
        sim.sim.put_weight(45000)
        with pytest.raises(ScaleOverload):
            await s.read_stable(timeout=2)
        current = await s.read_current()
    assert current.overload and current.grams is None and not current.stable


async def test_a_platter_that_never_settles(sim):
    async with scale("serial-lines", url=sim.url) as s:
        sim.sim.put_weight(800)
        sim.sim.hold_unstable()
        with pytest.raises(ScaleUnstable, match="did not settle"):
            await s.read_stable(timeout=0.4)
        current = await s.read_current()
        assert not current.stable and current.grams is not None
        sim.sim.hold_unstable(False)
        assert (await s.read_stable(timeout=2)).grams == 800


async def test_silence_is_a_timeout_not_instability(sim):
    sim.sim.stop_streaming()
    async with scale("serial-lines", url=sim.url, silence_timeout=0.2) as s:
        with pytest.raises(DeviceTimeout) as caught:
            await s.read_stable(timeout=2)
        assert not isinstance(caught.value, ScaleUnstable)
        with pytest.raises(DeviceTimeout):
            await s.read_current(timeout=0.1)


async def test_unplugged_scale_is_an_io_error(sim):
    async with scale("serial-lines", url=sim.url) as s:
        await s.read_current()
        sim.sim.unplug()
        with pytest.raises(DeviceIOError):
            await s.read_stable(timeout=2)


async def test_lines_that_are_not_weights_are_an_io_error(sim):
    sim.sim.stop_streaming()
    async with scale("serial-lines", url=sim.url, max_bad_lines=5) as s:
        task = asyncio.create_task(s.read_stable(timeout=3))
        await asyncio.sleep(0.05)
        for _ in range(5):
            sim.sim.send_raw(b"\x8a\xf3\x11garbage\r\n")
        with pytest.raises(DeviceIOError, match="not weights"):
            await asyncio.wait_for(task, 1)


@pytest.mark.parametrize("unit, grams", [("g", 2500), ("lb", 1000), ("kg", 30000)])
async def test_units(unit, grams):
    running = await run_scale_sim("pty", rate_hz=50, settle_lines=2, unit=unit)
    try:
        async with scale("serial-lines", url=running.url) as s:
            running.sim.put_weight(grams)
            assert (await s.read_stable(timeout=2)).grams == grams
    finally:
        await running.close()


async def test_open_errors_and_backends():
    with pytest.raises(DeviceOpenError):
        async with scale("serial-lines", url="/dev/does-not-exist-scale"):
            pass
    with pytest.raises(DeviceUnavailable):
        scale("ad-command")
    assert set(BACKENDS) == {"serial-lines"}
    with pytest.raises(ValueError):
        scale("serial-lines", url="socket://127.0.0.1:9", stable_lines=0)


async def test_reading_a_closed_scale_is_a_programming_error():
    s = scale("serial-lines", url="socket://127.0.0.1:9")
    assert isinstance(s, Scale)
    with pytest.raises(RuntimeError):
        await s.read_current()


def test_weight_as_dict():
    assert Weight(1234, True).as_dict() == {"grams": 1234, "stable": True, "overload": False, "kind": "gross"}
