"""A real headless Chromium for the dashboard's browser tests, driven by Selenium.

Debian's `chromium` and `chromium-driver` are installed by `make test` (the Makefile's
`browser` target); nothing is downloaded here. Selenium's calls block, so the async
tests make them in a thread while the deck serves the pages on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.dashkit import Dash

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
WAIT_SECONDS = 8.0
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)

T = TypeVar("T")


def start_chromium(profile: Path) -> WebDriver:
    """Chromium with a fresh profile; skipped outside CI when it is not installed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is not installed (make test installs it: `make browser`)")
        pytest.skip("Chromium is not installed; `make browser` installs it")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


class Browser:
    """Async steps over a blocking driver."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    async def _do(self, step: Callable[[], T]) -> T:
        return await asyncio.to_thread(step)

    async def forget(self) -> None:
        """A clean slate between tests: no cookies from an earlier server on this host."""
        await self._do(lambda: self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {}))

    async def emulate(self, width: int, height: int, *, mobile: bool) -> None:
        """Lay pages out as a screen this wide would (a phone: `mobile`, its viewport meta)."""
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
        await self._do(
            lambda: self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        )

    async def get(self, url: str) -> None:
        await self._do(lambda: self.driver.get(url))

    async def click(self, css: str) -> None:
        await self.wait_for(css)
        await self._do(lambda: self.driver.find_element(By.CSS_SELECTOR, css).click())

    async def type(self, css: str, text: str) -> None:
        await self._do(lambda: self.driver.find_element(By.CSS_SELECTOR, css).send_keys(text))

    async def text(self, css: str = "body") -> str:
        return await self._do(lambda: self.driver.find_element(By.CSS_SELECTOR, css).text)

    async def js(self, script: str) -> Any:  # whatever the script returns, as JSON has it
        return await self._do(lambda: self.driver.execute_script(script))

    async def wait_for(self, css: str, needle: str = "") -> str:
        """Wait until an element matching `css` exists (and shows `needle`); its text."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                found = await self._do(lambda: self._texts(css))
                for text in found:
                    if needle in text:
                        return text
                await asyncio.sleep(0.1)

    async def wait_gone(self, css: str, needle: str = "") -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while any(needle in text for text in await self._do(lambda: self._texts(css))):
                await asyncio.sleep(0.1)

    def _texts(self, css: str) -> list[str]:
        """Read in one script: live updates swap elements between separate driver calls."""
        script = "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText)"
        return list(self.driver.execute_script(script, css))

    async def screenshot(self, name: str) -> Path:
        """Save the whole page, as tall as its content, under tests/artifacts/."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"dashboard-{name}.png"

        def shoot() -> bytes:
            size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {"format": "png", "captureBeyondViewport": True, "clip": clip},
            )
            return base64.b64decode(shot["data"])

        path.write_bytes(await self._do(shoot))
        return path


async def sign_in(browser: Browser, dash: Dash, user: str) -> None:
    """Sign `user` in through a link the dashboard sent to their chat."""
    link = await dash.link_from_chat(user)
    await browser.get(link)
    await browser.click("#signin")
    await browser.wait_for(".who .user", user)
