"""report.html opened in headless Chromium: no broken image, no console error, every section the contents list
links to exists, and a screenshot of the first screen under the test's tmp folder.

A copy of the page gets a check script (the page itself has none): it records errors and console.error calls
from the start, and on load writes the broken images and missing anchors into <pre id="sb-check">, which
``--dump-dom`` returns. Chromium's own console lines (a resource that failed to load) come on stderr.
Integration: it starts a browser. ``make setup`` installs Debian's chromium when root.
"""
from __future__ import annotations

import contextlib
import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import report
from tests.bench.test_report import make_results

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium")
COMMITTED = Path(__file__).resolve().parents[2] / "results"
FIRST_SCREEN = (1400, 900)

EARLY = """<script>
window.__sbErrors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  window.__sbErrors.push(t && t.tagName ? "failed to load " + t.tagName + " " + (t.src || t.href)
                                        : "error: " + e.message);
}, true);
var __sbConsoleError = console.error;
console.error = function () { window.__sbErrors.push("console.error: " + Array.from(arguments).join(" "));
                              __sbConsoleError.apply(console, arguments); };
</script>"""

CHECK = """<pre id="sb-check"></pre><script>
window.addEventListener("load", function () {
  var found = {errors: window.__sbErrors, broken_images: [], missing_anchors: [], contents: [], images: 0};
  document.querySelectorAll("img").forEach(function (img) {
    found.images += 1;
    if (!img.complete || img.naturalWidth === 0) found.broken_images.push(img.getAttribute("src"));
  });
  document.querySelectorAll('a[href^="#"]').forEach(function (a) {
    var id = decodeURIComponent(a.getAttribute("href").slice(1));
    if (!document.getElementById(id)) found.missing_anchors.push(id);
  });
  document.querySelectorAll("#contents a").forEach(function (a) { found.contents.push(a.getAttribute("href")); });
  document.getElementById("sb-check").textContent = JSON.stringify(found);
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def open_in_browser(page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """The in-page check's findings and Chromium's console lines for a copy of the page beside it."""
    text = page.read_text()
    assert "<head>" in text and "</body>" in text
    copy = page.with_name("report.check.html")  # beside the page: the same relative plots/ paths
    copy.write_text(text.replace("<head>", "<head>" + EARLY, 1).replace("</body>", CHECK + "</body>", 1))
    done = chromium("--dump-dom", copy.as_uri(), profile=tmp_path / "profile-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="sb-check">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1), "the check script did not run: " + done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(found.group(1))), console


def screenshot(page: Path, tmp_path: Path) -> Path:
    shot = tmp_path / "report-first-screen.png"
    done = chromium(f"--screenshot={shot}", f"--window-size={FIRST_SCREEN[0]},{FIRST_SCREEN[1]}",
                    "--hide-scrollbars", page.as_uri(), profile=tmp_path / "profile-shot")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG"), "no screenshot"
    return shot


def check(page: Path, tmp_path: Path) -> dict:
    found, console = open_in_browser(page, tmp_path)
    assert found["images"] > 0
    assert found["broken_images"] == []
    assert found["errors"] == [] and console == []
    assert found["contents"] and found["missing_anchors"] == []
    screenshot(page, tmp_path)
    return found


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make setup as root installs it)")
def test_a_generated_report_opens_cleanly(tmp_path):
    root = make_results(tmp_path / "results")
    with contextlib.redirect_stdout(io.StringIO()):
        report.build(root)
    found = check(root / "report.html", tmp_path)
    assert "#study-docker-serving" in found["contents"] and "#provenance" in found["contents"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make setup as root installs it)")
@pytest.mark.skipif(not (COMMITTED / "report.html").is_file(), reason="no committed report")
def test_the_committed_report_opens_cleanly(tmp_path):
    page = tmp_path / "committed" / "report.html"
    shutil.copytree(COMMITTED / "plots", page.parent / "plots")
    shutil.copy(COMMITTED / "report.html", page)
    check(page, tmp_path)
