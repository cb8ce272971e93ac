"""Browser tests: pages xmen writes, rendered by a real headless Chromium (Debian's package ``chromium``).

Without chromium they are skipped locally and FAIL under ``CI=true`` (``.ci/run`` installs it with
``tests/browser/install.sh``), as the SLURM tests do without their cluster.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# Nothing may come from the network: every host name fails to resolve, so a page that needs one shows it.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000",
]

# Appended to a copy of the page under test: once everything loaded, write what the page shows into the DOM,
# which --dump-dom then prints.
PROBE = """
<script id="xmen-probe-script">
window.addEventListener("load", function () {
  var out = document.createElement("pre");
  out.id = "xmen-probe";
  out.textContent = JSON.stringify({
    text: document.body.innerText,
    images: Array.from(document.images).map(function (img) {
      return {alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight};
    }),
    tags: Array.from(document.body.querySelectorAll("*"))
      .filter(function (e) { return e.id !== "xmen-probe-script"; })
      .map(function (e) { return e.tagName.toLowerCase(); })
  });
  document.body.appendChild(out);
});
</script>
"""


@dataclass
class Rendered:
    text: str  # what a reader sees (innerText of the body)
    images: list[dict]
    tags: list[str]  # every element in the body, in document order


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def chromium() -> str:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (run tests/browser/install.sh): CI must run the browser tests")
        pytest.skip("chromium is not installed (tests/browser/install.sh installs it)")
    return path


@pytest.fixture
def render_page(chromium: str, tmp_path: Path):
    """Render an HTML file in headless Chromium: what it shows, its images and its elements."""

    def render(page: Path) -> Rendered:
        probe = tmp_path / f"probe-{page.name}"
        probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
        profile = tmp_path / "chromium-profile"
        shutil.rmtree(profile, ignore_errors=True)
        profile.mkdir()
        proc = subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=180,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        found = re.search(r'<pre id="xmen-probe">(.*?)</pre>', proc.stdout, re.S)
        assert found, f"the page did not finish loading:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        data = json.loads(html.unescape(found.group(1)))
        return Rendered(data["text"], data["images"], data["tags"])

    return render
