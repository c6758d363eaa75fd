"""Screenshots of a run's report.html (table view and comparison view) and its size and load time, in headless
Chromium from file:// -- what docs/ shows and what the notes quote. Usage:

    python benchmark/scripts/report_screenshots.py RUN_DIR [--out docs] [--repeat 5]

Load time: from navigation start to the page's load event (every table rendered by the inline script, images
lazy), median of --repeat fresh pages. Size: report.html itself, and the pictures beside it that it may load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", nargs="*", default=None,
                        help="labels of the comparison view's rows to show (default: the page's first two)")
    parser.add_argument("--image", default=None, help="test image of the comparison view (default: the first)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    page_file = args.run_dir / "report.html"
    pictures = [*args.run_dir.glob("samples/**/*.png"), *args.run_dir.glob("*.png")]  # what the page may load
    picture_bytes = sum(p.stat().st_size for p in pictures)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    args.out.mkdir(parents=True, exist_ok=True)
    loads, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROME_ARGS)
        for i in range(args.repeat):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(page_file.resolve().as_uri())
            page.wait_for_load_state("load")
            timing = page.evaluate("() => { const t = performance.getEntriesByType('navigation')[0];"
                                   " return {load: t.loadEventEnd, dom: t.domContentLoadedEventEnd}; }")
            loads.append(timing)
            if i == args.repeat - 1:
                rows = page.eval_on_selector_all("tr.row", "rs => rs.length")
                page.screenshot(path=str(args.out / "report-table.png"), full_page=False)
                page.locator("#compare").scroll_into_view_if_needed()
                label = page.eval_on_selector(
                    "#cmp-section", "s => [...s.options].find(o => o.text.startsWith('pipeline')).text")
                page.select_option("#cmp-section", label=label)
                if args.image:
                    page.select_option("#cmp-image", label=args.image)
                if args.rows:
                    for box in page.locator("#compare input[type=checkbox]").all():
                        wanted = box.evaluate("b => b.parentElement.textContent.trim()") in args.rows
                        if box.is_checked() != wanted:
                            box.click()
                page.wait_for_function(
                    "[...document.querySelectorAll('#cmp-panels img')].every(i => i.complete && i.naturalWidth)")
                page.locator("#compare").scroll_into_view_if_needed()
                page.screenshot(path=str(args.out / "report-compare.png"), full_page=False)
            page.close()
        browser.close()
    print(json.dumps({
        "report_html_bytes": page_file.stat().st_size,
        "pictures": len(pictures), "picture_bytes": picture_bytes, "rows": rows,
        "load_ms_median": round(statistics.median(t["load"] for t in loads), 1),
        "dom_content_loaded_ms_median": round(statistics.median(t["dom"] for t in loads), 1),
        "load_ms_all": [round(t["load"], 1) for t in loads], "errors": errors,
    }, indent=2))


if __name__ == "__main__":
    main()
