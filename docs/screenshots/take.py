"""Save screenshots of the main pages in English and Chinese under docs/screenshots/.

Run from the repository root: ``python docs/screenshots/take.py``.  It
builds a demo site in a temporary folder, serves it on localhost and
drives Debian's chromium (``/usr/bin/chromium``) with Playwright, the same
way the browser tests do.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.browser_support import (  # noqa: E402 - after the path is set
    CHROMIUM,
    CHROMIUM_ARGS,
    LOGIN,
    PASSWORD,
    demo_site,
    serve,
)

OUT = Path(__file__).resolve().parent


def pages(site) -> dict[str, str]:
    """The pages to shoot: name → path."""
    actor = site.users.actor(LOGIN)
    deal = site.records.list(actor, "opportunity", search="华信", limit=1).rows[0]
    return {
        "dashboard": "/",
        "list": "/r/opportunity",
        "detail": f"/r/opportunity/{deal['id']}",
        "form": "/r/opportunity/new",
        "kanban": "/r/opportunity/kanban",
        "calendar": "/calendar?span=month",
    }


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        site = demo_site(Path(tmp) / "site")
        targets = pages(site)
        with serve(site) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(base_url=url, viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.goto("/login")
            page.fill("input[name=login]", LOGIN)
            page.fill("input[name=password]", PASSWORD)
            page.click("form button[type=submit]")
            page.wait_for_url(f"{url}/")
            for lang in ("en", "zh"):
                page.goto("/profile")
                page.select_option("select[name=language]", lang)
                page.locator("form:has(select[name=language]) button[type=submit]").click()
                page.wait_for_load_state()
                for name, path in targets.items():
                    page.goto(path)
                    target = OUT / f"{name}-{lang}.png"
                    page.screenshot(path=str(target), full_page=name != "form")
                    print(f"saved {target.relative_to(ROOT)}")
            browser.close()
        site.close()


if __name__ == "__main__":
    main()
