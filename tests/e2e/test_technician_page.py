"""A technician logs in on a tablet, sees the wall live, pulses one door and runs the self-test, in
the real browser against the real service (the demo wall on a pty)."""

from __future__ import annotations

from playwright.sync_api import expect


def test_technician_sees_the_wall_live_and_tests_one_door(chromium, kiosk_service, shots):
    login, password = (kiosk_service.database.parent / "demo-technician.txt").read_text().split()
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        page.goto(kiosk_service.url("/technician"))
        page.get_by_test_id("tech-login").fill(login)
        page.get_by_test_id("tech-password").fill("wrong password")
        page.get_by_test_id("tech-submit").click()
        expect(page.locator("#message")).to_have_text("登录名或密码不正确。")
        page.get_by_test_id("tech-password").fill(password)
        page.get_by_test_id("tech-submit").click()
        wall = page.get_by_test_id("wall")
        expect(wall.locator(".door")).to_have_count(32)
        expect(wall.locator('.door[data-label="A03"]')).to_have_attribute("data-door", "closed")
        # the door test: one pulse, the door opens on the simulated wall and the picture follows
        page.get_by_test_id("pulse-label").select_option("A03")
        page.get_by_test_id("pulse-reason").fill("工单 42：门打不开")
        page.get_by_test_id("pulse").click()
        expect(wall.locator('.door[data-label="A03"]')).to_have_attribute("data-door", "open")
        expect(wall.locator('.door[data-label="A04"]')).to_have_attribute("data-door", "closed")
        expect(page.get_by_test_id("bus")).to_contain_text("A (kerong-cu16)")
        expect(page.get_by_test_id("logs")).to_contain_text("technician_open")
        page.get_by_test_id("printer-choice").select_option("label_printer")
        page.get_by_test_id("printer-test").click()
        expect(page.locator("#message")).to_have_text("测试页已发送到打印机。")
        page.get_by_test_id("selftest").click()
        expect(page.get_by_test_id("selftest-result")).to_contain_text("journal hash chain")
        page.screenshot(path=str(shots / "technician-page.png"), full_page=True)
        page.get_by_test_id("tech-logout").click()
        expect(page.get_by_test_id("tech-login")).to_be_visible()
    finally:
        context.close()
