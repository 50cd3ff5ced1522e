"""report.html of a tiny `kpod run`, rendered by headless Chromium: the accuracy table and
every figure are there, the figures' images decode, and no two text boxes of the laid-out
page overlap (from the DOM: a script in a copy of the page measures every text node's
client rects and writes the result into the DOM that --dump-dom prints). The figures'
own texts are checked with matplotlib's layout engine.

Skipped when Chromium is absent (Debian: `apt-get install chromium`; scripts/setup.sh
installs it where apt-get exists)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("torch")

from kpod.cli import main
from test_pipeline import _config, student_dir  # noqa: F401  (the tiny student fixture)

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (Debian: apt-get install chromium; "
    "scripts/setup.sh installs it where apt-get exists)",
)

FIGURES = (
    "Budget D(t) and written difficulty H(t)",
    "Given steps per question, by stage",
    "Questions advanced per stage, by cluster",
    "Distribution of the rationale-token weights",
)

# Measures the laid-out page after load and appends the result as JSON in <pre id='layout-check'>.
LAYOUT_SCRIPT = """
<script>
window.addEventListener('load', function () {
  const boxes = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let node, id = 0;
  while ((node = walker.nextNode())) {
    if (!node.textContent.trim() || node.parentElement.closest('script')) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      if (r.width > 0 && r.height > 0) {
        boxes.push({id: id, text: node.textContent.trim().slice(0, 40),
                    x0: r.left, y0: r.top, x1: r.right, y1: r.bottom});
      }
    }
    id++;
  }
  boxes.sort((a, b) => a.y0 - b.y0);
  const overlaps = [];
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length && boxes[j].y0 < boxes[i].y1; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.id === b.id) continue;
      const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
      const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
      if (w > 1 && h > 1) overlaps.push([a.text, b.text]);
    }
  }
  const images = [...document.querySelectorAll('figure img')].map(im => ({
    alt: im.alt, width: im.naturalWidth, shown: im.getBoundingClientRect().width}));
  // The token-weight view flows as text: far fewer lines than tokens.
  const tokens = [...document.querySelectorAll('.tokens .tok')];
  const tokenLines = new Set(tokens.map(t => Math.round(t.getBoundingClientRect().top))).size;
  const result = {
    tokens: tokens.length, token_lines: tokenLines,
    boxes: boxes.length, overlaps: overlaps.slice(0, 20), n_overlaps: overlaps.length,
    images: images, accuracy_rows: document.querySelectorAll('#accuracy tr.set').length,
    scroll_width: document.documentElement.scrollWidth, viewport: window.innerWidth};
  const pre = document.createElement('pre');
  pre.id = 'layout-check';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>
"""


def chromium_layout(report: Path, work: Path, width: int = 1200) -> dict:
    """Chromium's measurements of ``report`` (a copy with LAYOUT_SCRIPT) at ``width`` px."""
    assert CHROMIUM is not None
    page = work / f"measured-{width}.html"
    page.write_text(
        report.read_text(encoding="utf-8").replace("</body>", LAYOUT_SCRIPT + "</body>"),
        encoding="utf-8",
    )
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # tests may run as root (CI containers)
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={work / f'chromium-profile-{width}'}",
        f"--window-size={width},900",
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True).stdout
    found = re.search(r"<pre id=\"layout-check\">(.*?)</pre>", out, re.S)
    assert found, f"Chromium printed no layout result:\n{out[-2000:]}"
    import html

    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory, student_dir: Path) -> Path:  # noqa: F811
    tmp = tmp_path_factory.mktemp("browser")
    assert main(["run", str(_config(tmp, student_dir))]) == 0
    return tmp / "run"


@needs_chromium
@pytest.mark.parametrize("width", [1200, 800])
def test_report_renders_in_chromium_without_overlapping_text(
    tiny_report: Path, tmp_path: Path, width: int
) -> None:
    result = chromium_layout(tiny_report / "report.html", tmp_path, width)
    assert result["accuracy_rows"] == 1  # the tiny run's one test set
    alts = [im["alt"] for im in result["images"]]
    assert alts == list(FIGURES)
    assert all(im["width"] > 0 and im["shown"] > 0 for im in result["images"]), result["images"]
    assert result["boxes"] > 100  # tables, captions, the token-weight view
    assert result["n_overlaps"] == 0, result["overlaps"]
    assert result["scroll_width"] <= result["viewport"]  # nothing runs off the page
    assert result["tokens"] > 0 and result["token_lines"] * 4 < result["tokens"]


def test_report_figures_have_no_overlapping_text(tiny_report: Path) -> None:
    import numpy as np

    from kpod.data.prepared import load_prepared
    from kpod.report import build_figures, rationale_weights, text_overlaps
    from kpod.schedule import StageResult

    lines = (tiny_report / "train" / "kpod_stages.jsonl").read_text().splitlines()
    stages = [StageResult.from_dict(json.loads(x)) for x in lines]
    clusters = np.asarray(load_prepared(tiny_report / "clusters" / "dataset")["cluster"])
    weights = rationale_weights(load_prepared(tiny_report / "scores" / "dataset"))
    figs = build_figures(stages, clusters, weights)
    assert list(figs) == list(FIGURES)
    for caption, fig in figs.items():
        assert text_overlaps(fig) == [], caption
    import matplotlib.pyplot as plt

    for fig in figs.values():
        plt.close(fig)
    page = (tiny_report / "report.html").read_text()
    assert page.index("id='accuracy'") < page.index("Budget D(t)") < page.index("id='metrics'")
