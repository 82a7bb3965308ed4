"""The web view (``/lambdakube/ui``) in real headless Chromium against a real router.

Debian's ``chromium`` and ``chromium-driver`` drive it through selenium; without them
the test fails naming the packages (never a skip). Selenium's calls block, so they run
on a worker thread while the router serves the page's polls on the test's event loop.
Each wait is bounded; a screenshot of the busy burst and of the end is kept in the
test's tmp dir (the path is printed: ``pytest -s``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from lambdakube_router.access import AuthSettings
from tests.router.conftest import function

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 20.0

SLOW = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return "done"
"""
RESERVED = "ReservedFunctionConcurrentInvocationLimitExceeded"


@pytest.fixture
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver"
            " (apt-get install -y chromium chromium-driver; .ci/run does)",
            pytrace=False,
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: run `make deps` (the test extras)", pytrace=False)
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()  # ends the chromedriver process it started (by its handle)


def _wait(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.05).until(lambda d: condition(d))
    except Exception as exc:
        raise AssertionError(f"{what} not seen within {WAIT_SECONDS}s; page: {driver.page_source[:3000]}") from exc


#: What the page shows, read in one script (the page re-renders on every poll, so an
#: element found in one call may be gone by the next).
SNAPSHOT = """
const out = {functions: {}, status: document.getElementById("status").textContent,
             quotaInFlight: document.getElementById("quota").dataset.inFlight};
for (const card of document.querySelectorAll("[data-function]")) {
  const reasons = {};
  for (const r of card.querySelectorAll("[data-reason]")) reasons[r.dataset.reason] = Number(r.dataset.count);
  out.functions[card.dataset.function] = {
    states: [...card.querySelectorAll(".tile")].map(t => t.dataset.state),
    provisioned: card.querySelectorAll(".tile.provisioned").length,
    throttles: reasons,
    p50: card.querySelector('[data-stat="p50"] b').textContent,
  };
}
return out;
"""


def _snapshot(driver) -> dict:
    return driver.execute_script(SNAPSHOT)


def _fn(driver, name: str) -> dict | None:
    return _snapshot(driver)["functions"].get(name)


async def _until(driver, condition, what: str):
    """``condition(snapshot)`` truthy, polled off the event loop (the router runs on it)."""
    return await asyncio.to_thread(_wait, driver, lambda d: condition(_snapshot(d)), what)


async def test_tiles_turn_busy_and_back_and_a_throttle_shows(make_router, browser, tmp_path):
    router = await make_router(
        function("burst", SLOW, reservedConcurrency=3),
        function("steady", SLOW, provisionedConcurrency=1),
    )
    await asyncio.to_thread(browser.get, router.url("/lambdakube/ui?interval=100"))
    await _until(browser, lambda s: "burst" in s["functions"], "the function cards")
    # the provisioned environment is a tile of its own, marked
    await _until(browser, lambda s: s["functions"]["steady"]["provisioned"] == 1, "the provisioned tile")

    # 5 at once against a reservation of 3: 3 run for a while, 2 are throttled
    burst = [asyncio.ensure_future(router.invoke("burst", {"sleep": 2.0})) for _ in range(5)]
    try:
        busy = await _until(browser, lambda s: "busy" in s["functions"]["burst"]["states"] and s, "a busy tile")
        assert set(busy["functions"]["burst"]["states"]) <= {"starting", "idle", "busy"}
        assert busy["quotaInFlight"] is not None and 1 <= int(busy["quotaInFlight"]) <= 3
        shot = tmp_path / "ui-busy.png"
        await asyncio.to_thread(browser.save_screenshot, str(shot))
        print(f"screenshot (busy): {shot}")
        seen = await _until(browser, lambda s: s["functions"]["burst"]["throttles"] and s, "the throttle")
        assert seen["functions"]["burst"]["throttles"] == {RESERVED: 2}
        statuses = sorted(status for status, _, _ in await asyncio.gather(*burst))
    finally:
        for f in burst:
            f.cancel()
    assert statuses == [200, 200, 200, 429, 429]

    final = await _until(
        browser,
        lambda s: (st := s["functions"]["burst"]["states"]) and all(x == "idle" for x in st) and s,
        "every tile idle again",
    )
    burst_view = final["functions"]["burst"]
    assert len(burst_view["states"]) == 3 and burst_view["throttles"] == {RESERVED: 2}
    p50 = burst_view["p50"]
    assert p50.endswith("ms") and float(p50.split()[0]) >= 2000
    shot = tmp_path / "ui-idle.png"
    await asyncio.to_thread(browser.save_screenshot, str(shot))
    print(f"screenshot (idle): {shot}")


async def test_the_page_asks_for_a_token_and_keeps_it_in_the_tab(make_router, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    path = tmp_path / "tokens.csv"
    path.write_text("t0ken,alice,1\n")
    router = await make_router(function("hello", SLOW), auth=AuthSettings(mode="token-file", token_file=str(path)))
    await asyncio.to_thread(browser.get, router.url("/lambdakube/ui?interval=100"))
    refused = await _until(browser, lambda s: "401" in s["status"] and s, "the 401")
    assert "UnrecognizedClientException" in refused["status"] and "enter a token" in refused["status"]
    assert refused["functions"] == {}

    token = await asyncio.to_thread(browser.find_element, By.ID, "token")
    await asyncio.to_thread(token.send_keys, "t0ken", Keys.TAB)  # its change event
    await _until(browser, lambda s: "hello" in s["functions"], "the data, with the token")
    stored = await asyncio.to_thread(
        browser.execute_script, "return [sessionStorage.getItem('lambdakube.token'), document.cookie]"
    )
    assert stored == ["t0ken", ""]
    await asyncio.to_thread(browser.refresh)  # the same tab keeps it
    await _until(browser, lambda s: "hello" in s["functions"], "the data after a reload")


def test_chromium_is_debians():
    """Which browser the view was tested in (for the report), when installed."""
    if shutil.which("chromium") is None:
        pytest.fail("chromium missing: apt-get install -y chromium chromium-driver (.ci/run does)", pytrace=False)
