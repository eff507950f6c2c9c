"""Screenshots of the graph page for review: ``python -m tests.meshui.take_screenshots URL OUT``."""

from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

from tests.meshui.browser import CHROMIUM, CHROMIUM_ARGS


def main(url: str, out: str, hover: str | None = None) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 860})
        page.goto(url)
        page.wait_for_selector("#status.live", timeout=15000)
        page.wait_for_timeout(800)
        if hover:
            box = page.locator(hover).first.bounding_box()
            if box:
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.wait_for_timeout(400)
        page.screenshot(path=out)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
