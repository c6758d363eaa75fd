"""report.html in a real browser: headless Chromium (Debian's package) driven by Playwright.

Playwright rather than Selenium: it drives the system Chromium without a matching chromedriver, and it sees
console messages and page errors directly. The tests skip with one line when Chromium or Playwright is
missing; `.ci/run` installs both, so CI runs them.
"""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import REPO, run_zoo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    tmp = tmp_path_factory.mktemp("report")
    proc = run_zoo("bench", "--suite", "smoke", "--colorizer", "gray", "--sr", "edsr", "--out", str(tmp / "run"),
                   "--cache", str(tmp / "cache"))
    assert proc.returncode == 0, proc.stderr
    return tmp / "run"


@pytest.fixture(scope="module")
def page(report):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        requests: list[str] = []
        page.on("request", lambda req: requests.append(req.url))
        page.goto((report / "report.html").as_uri())
        page.wait_for_load_state("load")
        page.errors, page.requests = errors, requests
        yield page
        browser.close()


def _column(page, section: str, label: str) -> list[str]:
    """The visible cells of a column of a section's table, top to bottom."""
    return page.evaluate("""([sec, label]) => {
        const table = document.getElementById(sec).querySelector("table");
        const ths = [...table.querySelectorAll("th")];
        const i = ths.findIndex((th) => th.textContent.trim().split(" ")[0] === label);
        return [...table.querySelectorAll("tr.row:not(.hidden)")].map((tr) => tr.children[i].textContent);
    }""", [section, label])


def _section(page, stage_title_start: str) -> str:
    return page.evaluate("""(start) => [...document.querySelectorAll("section")]
        .find((s) => s.querySelector("h2").textContent.startsWith(start)).id""", stage_title_start)


def test_the_page_loads_from_file_without_errors_or_network(page):
    assert page.errors == []
    assert all(url.startswith("file://") for url in page.requests), page.requests
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-table.png"), full_page=True)


def test_sorting_by_a_metric_reorders_the_rows(page):
    sec = _section(page, "Super-resolution alone")
    header = page.locator(f"#{sec} th", has_text="psnr").first
    header.click()
    first = [float(v) for v in _column(page, sec, "psnr")]
    header.click()
    second = [float(v) for v in _column(page, sec, "psnr")]
    assert len(first) == 2 and first != second
    assert sorted(first) in (first, first[::-1]) and second == first[::-1]
    assert _column(page, sec, "model") != []


def test_the_filter_hides_rows(page):
    sec = _section(page, "Pipeline")
    assert len(_column(page, sec, "model")) == 2
    page.fill("#filter", "edsr")
    assert [m for m in _column(page, sec, "model")] == ["gray + edsr (color-first)"]
    page.fill("#filter", "")
    assert len(_column(page, sec, "model")) == 2


def test_per_image_values_of_a_row(page):
    sec = _section(page, "Super-resolution alone")
    page.locator(f"#{sec} tr.row").first.click()
    detail = page.locator(f"#{sec} tr.detail").first.inner_text()
    assert "image" in detail and "psnr" in detail and "chelsea" in detail


def test_the_comparison_view_shows_outputs_at_native_size(page, report):
    page.locator("#compare").scroll_into_view_if_needed()
    page.select_option("#cmp-section", label=page.eval_on_selector(
        "#cmp-section", "s => [...s.options].find(o => o.text.startsWith('pipeline')).text"))
    page.wait_for_function("[...document.querySelectorAll('#cmp-panels img')].every(i => i.complete && i.naturalWidth)")
    sizes = page.eval_on_selector_all("#cmp-panels img",
                                      "imgs => imgs.map(i => [i.alt, i.naturalWidth, i.clientWidth])")
    assert [s[0] for s in sizes] == ["gray input (LR)", "gray + bicubic", "gray + edsr", "ground truth"]
    assert all(natural == shown for _, natural, shown in sizes), sizes  # 1x: native pixels
    hr = sizes[-1][1]
    assert sizes[1][1] == sizes[2][1] == hr == 2 * sizes[0][1]  # x2 outputs at the ground truth's size
    page.select_option("#cmp-zoom", "2")
    zoomed = page.eval_on_selector_all("#cmp-panels img", "imgs => imgs.map(i => i.clientWidth)")
    assert zoomed == [2 * s[1] for s in sizes]
    views = page.locator("#cmp-panels .view")
    views.nth(1).evaluate("v => { v.scrollLeft = v.scrollWidth; v.dispatchEvent(new Event('scroll')); }")
    lefts = page.eval_on_selector_all("#cmp-panels .view", "vs => vs.map(v => v.scrollLeft)")
    assert lefts[2] > 0 and lefts[3] > 0  # the other views follow
    page.screenshot(path=str(ARTIFACTS / "report-compare.png"), full_page=False)
    assert page.errors == []


def test_merged_report_written_elsewhere_finds_the_pictures(report, tmp_path):
    out = tmp_path / "merged"
    proc = run_zoo("leaderboard", str(report), "--format", "html", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    html = (out / "report.html").read_text()
    data = json.loads(html.split('id="zoo-data">', 1)[1].split("</script>", 1)[0].replace("<\\/", "</"))
    pictures = [r["pictures"] for s in data["sections"] for r in s["rows"] if r["pictures"]]
    assert pictures and all((out / p["out"] / p["images"][0]).is_file() for p in pictures)
