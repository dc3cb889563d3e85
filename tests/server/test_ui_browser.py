"""The supervisor page in a real browser: the system's Chromium, headless, driven by
Playwright, against the service and the Bird simulator on loopback. A supervisor logs
in, watches a call come onto the line and leave it; a wrong token is refused.

No browser is downloaded: the test drives ``/usr/bin/chromium`` (Debian's ``chromium``
package, installed by ``.ci/run``) and fails, saying how to install it, where it is
missing. It saves screenshots in ``artifacts/``: the page with the live call, and the
login form refusing a wrong token.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect
from redis.asyncio import Redis

from service.cli.demo import AGENTS, ANN
from service.sim import AgentScript, CallerScript
from tests.e2e.test_e2e import GRAPHS, NUMBER, stack
from tests.paths import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
SCREENSHOT = ARTIFACTS / "supervisor-page.png"
WAIT_MS = 15_000  # the longest any expectation waits (the page polls every 2 s)


def installed_chromium() -> str:
    """The system's Chromium; the test fails, saying how to install it, without it."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is missing: this test drives the system's Chromium at {CHROMIUM} "
            "(no browser is downloaded). Install it - Debian/Ubuntu: "
            "sudo apt-get install -y --no-install-recommends chromium (`make test` does it "
            "where it may: tests/tools/ensure-chromium).",
            pytrace=False,
        )
    return str(CHROMIUM)


@contextlib.asynccontextmanager
async def browser_page() -> AsyncIterator[Page]:
    """A page of a headless Chromium, the system's own."""
    executable = installed_chromium()
    expect.set_options(timeout=WAIT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            context = await browser.new_context(
                viewport={"width": 1440, "height": 1000}, locale="en-GB", timezone_id="UTC"
            )
            yield await context.new_page()
        finally:
            await browser.close()


async def log_in(page: Page, token: str) -> None:
    await page.get_by_label("Admin token").fill(token)
    await page.get_by_role("button", name="Log in").click()


async def test_a_supervisor_sees_a_call_come_onto_the_line_and_leave_it(
    redis: Redis, logged: io.StringIO
) -> None:
    # Ann takes the billing caller and talks until the caller hangs up, 8 s after the
    # answer (800 simulated seconds at a time scale of 0.01).
    talks = {**AGENTS, ANN.address: AgentScript("answer", answer_after_s=1, talk_s=math.inf)}
    caller = CallerScript("watched", "+31612345678", NUMBER, ("1", "1234567#"), hangup_after_s=800)
    async with (
        browser_page() as page,
        stack(redis, seated=(ANN,), agents=talks, time_scale=0.01) as s,
    ):
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        await page.goto(f"{s.service_url}/admin/ui")
        await log_in(page, s.token)
        await expect(page.locator("#dashboard")).to_be_visible()
        await expect(page.locator("#calls-empty")).to_be_visible()
        ann = page.locator('#agents-table tr[data-agent-id="ann"]')
        await expect(ann).to_contain_text("available")
        # Something for the recent errors: a delivery that is not Bird's.
        async with httpx.AsyncClient(base_url=s.service_url) as http:
            assert (await http.post("/webhooks/bird", content=b"{}")).status_code == 401

        call_id = await s.sim.place_inbound_call(caller)
        row = page.locator(f'#calls-table tbody tr[data-call-id="{call_id}"]')
        await expect(row).to_contain_text("connected")  # with Ann
        await expect(row).to_contain_text("support-line")
        await expect(row).to_contain_text("+31******678")  # the caller's number, masked
        await expect(page.locator("#calls-count")).to_have_text("1")
        await expect(ann).to_contain_text("in_call")
        await row.get_by_role("button").click()
        detail = page.locator("#call-detail")
        await expect(detail.locator("#call-detail-id")).to_have_text(call_id)
        await expect(detail.locator('#call-timeline li[data-kind="begin"]')).to_have_count(1)
        await expect(detail.locator("#call-timeline")).to_contain_text("billing")
        rejected = page.locator('#errors-table tr[data-event="webhook_rejected"]')
        await expect(rejected.first).to_contain_text("warning")
        await expect(page.locator('#queues-table tr[data-queue="billing"]')).to_be_visible()
        diagram = page.locator('#graphs img.diagram[data-graph="support-line"]')
        version = GRAPHS.graphs["support-line"].version
        alt = f"Diagram of graph support-line, version {version}, with today's traffic"
        await expect(diagram).to_have_attribute("alt", alt)
        assert await diagram.evaluate("image => image.complete && image.naturalWidth > 0")
        # "Refresh now" draws the diagrams again: today's traffic with this call on it.
        drawn_before = await diagram.get_attribute("src")
        await page.get_by_role("button", name="Refresh now").click()
        await page.wait_for_function(
            """before => {
                const image = document.querySelector('#graphs img[data-graph="support-line"]');
                return image && image.src !== before && image.complete && image.naturalWidth > 0;
            }""",
            arg=drawn_before,
        )
        await expect(row).to_be_visible()  # still on the line in the screenshot
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=SCREENSHOT, full_page=True)

        await s.sim.wait_ended(call_id, timeout_s=30)
        await expect(row).to_have_count(0)  # gone from the live calls
        await expect(page.locator("#calls-empty")).to_be_visible()
        await expect(page.locator("#call-detail-note")).to_contain_text("This call has ended")
        await expect(page.locator("#status")).to_contain_text("Updated")
    assert problems == []


async def test_a_wrong_token_is_refused_and_the_login_form_shown_again(redis: Redis) -> None:
    async with browser_page() as page, stack(redis) as s:
        await page.goto(f"{s.service_url}/admin/ui")
        await log_in(page, "not-the-token-at-all")
        error = page.locator("#login-error")
        await expect(error).to_contain_text("That token was refused")
        await expect(page.get_by_label("Admin token")).to_be_visible()
        await expect(page.get_by_label("Admin token")).to_have_value("")
        await expect(page.locator("#dashboard")).to_be_hidden()
        assert await page.evaluate("sessionStorage.getItem('ivr-admin-token')") is None
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "supervisor-page-token-refused.png")
        await log_in(page, s.token)  # and the right one lets the supervisor in
        await expect(page.locator("#dashboard")).to_be_visible()
        await expect(error).to_be_hidden()
