"""Pages as a reader sees them: served on loopback and opened in headless Chromium (Debian's
``chromium`` and ``chromedriver``, which ``make test`` installs), driven by Selenium.

A missing browser fails the test that needs it (never a skip): the pages are part of what the
suite proves.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# headless on a closed network: no GPU, no sandbox (root), no calls home
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)

# what the page shows, read in the browser after it loaded
_FACTS = """
const imgs = [...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,
  width: i.naturalWidth, height: i.naturalHeight, shown: i.getBoundingClientRect().width}));
const tables = [...document.querySelectorAll('table')].map(t => ({
  heading: t.previousElementSibling ? t.previousElementSibling.textContent : '',
  rows: t.rows.length, cells: t.querySelectorAll('td').length}));
return {title: document.title, h1: document.querySelector('h1')?.textContent ?? '',
  text: document.body.innerText, images: imgs, tables: tables,
  overflow: document.documentElement.scrollWidth - window.innerWidth};
"""


@dataclass(frozen=True)
class Page:
    """What a reader of the page gets: its title and text, each image as decoded, each table,
    how far it runs off the window sideways (px, <= 0: none), the browser's errors, and a
    screenshot."""

    title: str
    h1: str
    text: str
    images: list[dict]
    tables: list[dict]
    overflow: int
    errors: list[str]
    screenshot: bytes
    live: dict | None = None  # the live page's state as last drawn (window.volstreamLive)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request lines in the test output
        pass


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on 127.0.0.1 (a free port) for the life of the block: its URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # screenshots CI keeps


def keep(name: str, png: bytes) -> Path:
    """Keep a screenshot as a test artifact (``test-artifacts/NAME``): what a reviewer looks at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(png)
    return path


def open_page(folder: Path, name: str = "index.html") -> Page:
    """``folder/name`` loaded in headless Chromium from a loopback server, with what it shows."""
    with served(folder) as url:
        return open_url(url + name)


def open_url(url: str, ready: str | None = None, timeout: float = 60.0, height: int = 900) -> Page:
    """``url`` (loopback) loaded in headless Chromium, with what it shows; with ``ready`` (a
    script returning true when the page has drawn what it must), once that holds; the window
    ``height`` px tall (1280 wide)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            f"no headless browser: {CHROMIUM} and {CHROMEDRIVER} are needed (Debian's chromium "
            "and chromium-driver; `make test` installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_window_size(1280, height)
        driver.get(url)
        if ready:
            from selenium.webdriver.support.ui import WebDriverWait

            WebDriverWait(driver, timeout, poll_frequency=0.25).until(
                lambda d: d.execute_script(ready)
            )
        facts = driver.execute_script(_FACTS)
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        shot = driver.get_screenshot_as_png()
        live = driver.execute_script("return window.volstreamLive ?? null")
    finally:
        driver.quit()
    return Page(
        facts["title"],
        facts["h1"],
        facts["text"],
        facts["images"],
        facts["tables"],
        int(facts["overflow"]),
        errors,
        shot,
        live,
    )


def check_report(page: Page, folder: Path) -> None:
    """A playbook report as its reader needs it: every PNG of ``folder`` on the page, decoded
    and shown within the window; every table with rows of figures; nothing running off the
    window sideways; no browser error (a missing image would be one); a screenshot."""
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert sorted(i["src"] for i in page.images) == pngs and pngs
    for image in page.images:
        assert image["complete"] and image["width"] > 300 and image["height"] > 200, image
        assert 300 < image["shown"] <= 1280, image  # scaled to the page, never past it
    assert page.tables and all(t["rows"] > 1 and t["cells"] > 0 for t in page.tables)
    assert page.overflow <= 0, f"the page runs {page.overflow}px off the window"
    assert page.errors == [], page.errors
    assert page.title == page.h1 and page.screenshot.startswith(b"\x89PNG\r\n\x1a\n")
    (folder / "screenshot.png").write_bytes(page.screenshot)
