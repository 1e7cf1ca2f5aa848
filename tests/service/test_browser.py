"""The web page in headless Chromium (Debian's package, driven by Playwright): upload, see results, click one."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from helpers import CHROMIUM_FLAGS

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_upload_shows_ranked_thumbnails_and_a_click_searches_again(live_server: str, class_folders: Path) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(live_server)
            page.set_input_files("#file", str(class_folders / "class1" / "0003.png"))
            page.wait_for_selector("#results figure.hit")
            captions = page.locator("#results figcaption").all_inner_texts()
            assert len(captions) == 10
            assert captions[0] == "d = 0 · class1"
            distances = [int(c.split()[2]) for c in captions]
            assert distances == sorted(distances)
            page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.naturalWidth > 0)")

            clicked = page.locator("#results figure.hit").nth(4)
            clicked_id = clicked.get_attribute("data-id")
            clicked_code = httpx.get(f"{live_server}/items/{clicked_id}").json()["code"]
            clicked.click()
            page.wait_for_function(f"document.getElementById('query').dataset.code === {clicked_code!r}")
            page.wait_for_selector(f"#query img[src='/items/{clicked_id}/image']")
            hits = page.locator("#results figure.hit")
            exact = [hits.nth(i).get_attribute("data-id") for i in range(hits.count())
                     if hits.nth(i).inner_text().startswith("d = 0")]
            assert clicked_id in exact  # the clicked image is now the query, at distance 0 from itself

            first = page.locator("#results figure.hit").first
            first_id = first.get_attribute("data-id")
            first.locator("button.copies").click()
            page.wait_for_selector(f"#query img[src='/items/{first_id}/image']")
            page.wait_for_function("document.getElementById('status').textContent.includes('likely copies')")
            shown = {page.locator("#results figure.hit").nth(i).get_attribute("data-id")
                     for i in range(page.locator("#results figure.hit").count())}
            expected = {str(h["id"]) for h in httpx.get(f"{live_server}/items/{first_id}/duplicates").json()["hits"]}
            assert shown == expected
        finally:
            browser.close()
