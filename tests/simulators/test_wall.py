import re

import httpx
import pytest
from fastapi import FastAPI

from simulators.kerong_cu16 import KerongCU16Simulator
from simulators.wall import wall_router


@pytest.fixture
def sims():
    return {"A": KerongCU16Simulator(boards=[0], doors_per_board=4), "B": KerongCU16Simulator(boards=[1, 2], doors_per_board=2)}


def client_for(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kiosk")


async def test_page_draws_every_door_with_stable_handles(sims):
    app = FastAPI()
    app.include_router(wall_router(sims, labels=lambda bank, board, ch: f"{bank}{board * 10 + ch + 1:02d}"))
    sims["A"].open_door(0, 2)
    async with client_for(app) as client:
        response = await client.get("/sim")
    assert response.status_code == 200
    html = response.text
    doors = re.findall(r'<div class="door" id="door-(\w+)-(\d+)-(\d+)"', html)
    assert len(doors) == 4 + 2 * 2
    assert ("B", "2", "1") in doors
    door = re.search(r'<div class="door" id="door-A-0-2"[^>]*>', html).group(0)
    assert 'data-bank="A"' in door and 'data-board="0"' in door and 'data-channel="2"' in door
    assert 'data-door="open"' in door and 'data-item="empty"' in door
    assert ">A03<" in html and ">B22<" in html
    for action in ("open", "close", "put", "take"):
        assert html.count(f'data-action="{action}"') == 8
    assert "min-height: 44px" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # self-contained, no CDN
    assert 'id="inbox"' not in html  # no inbox given, no phone panel
    assert '"/sim/api/state"' in html


async def test_default_label_is_bank_board_channel(sims):
    app = FastAPI()
    app.include_router(wall_router(sims, labels=lambda bank, board, ch: "A01" if (bank, board, ch) == ("A", 0, 0) else None))
    async with client_for(app) as client:
        state = (await client.get("/sim/api/state")).json()
    assert state["banks"][1]["boards"][0]["doors"][1]["label"] == "B 1/1"
    assert state["banks"][0]["boards"][0]["doors"][0]["label"] == "A01"
    assert state["inbox"] is None


async def test_actions_change_the_simulated_wall(sims):
    app = FastAPI()
    app.include_router(wall_router(sims))
    sim = sims["B"]
    async with client_for(app) as client:
        assert (await client.post("/sim/api/B/2/1/put")).status_code == 409  # door closed
        response = await client.post("/sim/api/B/2/1/open")
        assert response.json()["closed"] is False
        assert (await client.post("/sim/api/B/2/1/put")).json()["item"] is True
        await client.post("/sim/api/B/2/1/close")
        await client.post("/sim/api/B/2/1/jam")
        state = (await client.get("/sim/api/state")).json()
        assert (await client.post("/sim/api/B/2/1/explode")).status_code == 400
        assert (await client.post("/sim/api/C/0/0/open")).status_code == 404
        assert (await client.post("/sim/api/B/2/9/open")).status_code == 404
    door = sim.door(2, 1)
    assert (door.closed, door.item, door.jammed) == (True, True, True)
    reported = state["banks"][1]["boards"][1]["doors"][1]
    assert (reported["closed"], reported["item"], reported["jammed"]) == (True, True, True)
    assert state["version"] == f"{sims['A'].version}.{sim.version}"


async def test_phone_panel_lists_messages_newest_first(sims):
    messages = [{"to": "139****0000", "text": "second"}, {"to": "138****5678", "text": "first <b>"}]
    app = FastAPI()
    app.include_router(wall_router(sims, inbox=lambda: messages))
    async with client_for(app) as client:
        html = (await client.get("/sim")).text
        state = (await client.get("/sim/api/state")).json()
    assert [m["text"] for m in state["inbox"]] == ["second", "first <b>"]
    assert html.index("second") < html.index("first &lt;b&gt;")  # newest first, escaped
    assert "138****5678" in html


async def test_page_works_under_a_prefix(sims):
    app = FastAPI()
    app.include_router(wall_router(sims), prefix="/dev")
    async with client_for(app) as client:
        html = (await client.get("/dev/sim")).text
        assert (await client.post("/dev/sim/api/A/0/0/open")).status_code == 200
    assert '"/dev/sim/api/state"' in html and '"/dev/sim/api"' in html
