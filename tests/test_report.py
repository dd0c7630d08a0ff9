"""The report page (bhscore.report): its content, and the page in a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from bhscore import figures, report
from bhscore.cli import main as cli_main
from bhscore.verify import read_published

from .browser import Browser, install_chromium

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def report_env(accuracy_settings, tmp_path_factory):
    """Figure tables of conftest's 3 simulated DNNs, one figure PNG, a provenance record, and the page."""
    out = tmp_path_factory.mktemp("report") / "figures"
    figures.write_tables(figures.compute_tables(accuracy_settings, progress=False), out)
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    figures.save_figure(fig, out, "fig3a_ranking", formats=("png",))
    plt.close(fig)
    record = {"created": "2026-01-01T00:00:00Z", "package_version": "0.1.0",
              "dnns": {"D0": {"decoding": {"source": "published", "n_files": 90, "files_sha256": "ab" * 32}}}}  # fmt: skip
    (out / report.PROVENANCE_FILE).write_text(json.dumps(record))
    page = report.build_report(out, settings_path=accuracy_settings.source)
    return {"settings": accuracy_settings, "out": out, "page": page, "html": page.read_text()}


def test_page_content(report_env):
    html, s = report_env["html"], report_env["settings"]
    assert report_env["page"] == report_env["out"] / "index.html"
    body = re.search(r'<table class="sortable" id="scores">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    assert body.count("<tr>") == len(s.dnns)
    assert all(f">{name}<" in body for name in s.dnns)
    assert 'id="pairwise"' in html and html.count("data:image/png;base64,") == 1
    assert "fig3b_imagenet.png not built" in html  # missing figures are named, not silently left out
    assert "files_sha256" in html and "2026-01-01T00:00:00Z" in html  # the provenance record, whatever keys
    assert "no DNN of this table is in the published table" in html  # D0.. are not the paper's DNNs
    assert "Content-Security-Policy" in html and "http://" not in html and "https://" not in html


def test_no_provenance_note_and_cli(report_env, tmp_path, capsys):
    out = tmp_path / "figs"
    shutil.copytree(report_env["out"], out)
    (out / report.PROVENANCE_FILE).unlink()
    (out / "index.html").unlink()
    assert cli_main(["report", "--settings", str(report_env["settings"].source), "--figures", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert 'id="no-provenance"' in (out / "index.html").read_text()
    assert cli_main(["report", "--figures", str(tmp_path / "empty")]) == 2
    assert "score table not found" in capsys.readouterr().err


def test_verify_section_with_published_dnns(report_env):
    pub = read_published().head(3)
    scores = pub.assign(p_method="legacy")
    html = report.verify_html(report_env["settings"], scores)
    assert "PASS: 3 DNN(s) reproduced" in html and html.count('class="ok">ok<') == 3
    html = report.verify_html(report_env["settings"], scores.assign(encoding=scores.encoding + 0.01))
    assert "FAIL" in html


def test_names_are_escaped(report_env):
    scores = pd.DataFrame(
        {"dnn": ["<script>alert(1)</script>"], "averaged": [0.1], "decoding": [0.1], "encoding": [0.1]}
    )
    html = report.score_table_html(scores, None)
    assert "<script>" not in html and "&lt;script&gt;" in html


# -------------------------------------------------------------------------------------------------
# in a real browser
# -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    path, why = install_chromium()
    if path is None:
        pytest.skip(f"no headless Chromium: {why}")
    return path


def _column(b: Browser, index: int) -> list[str]:
    return b.evaluate(
        f"Array.from(document.querySelectorAll('#scores tbody tr')).map(r => r.cells[{index}].textContent.trim())"
    )


def test_page_in_headless_chromium(report_env, chromium):
    """Loads without console errors or network requests, one row per DNN, header clicks sort; a screenshot."""
    names = list(report_env["settings"].dnns)
    with Browser(chromium) as b:
        b.open(report_env["page"].resolve().as_uri())
        assert b.evaluate("document.readyState") == "complete"
        assert b.evaluate("document.querySelectorAll('#scores tbody tr').length") == len(names)
        assert sorted(_column(b, 1)) == sorted(names)
        headers = b.evaluate(
            "Array.from(document.querySelectorAll('#scores thead th')).map(h => h.textContent)"
        )
        dnn_col, avg_col = headers.index("DNN"), headers.index("averaged")

        b.click(f"#scores thead th:nth-child({dnn_col + 1})")
        assert _column(b, dnn_col) == sorted(names)
        b.click(f"#scores thead th:nth-child({dnn_col + 1})")  # again: descending
        assert _column(b, dnn_col) == sorted(names, reverse=True)
        b.click(f"#scores thead th:nth-child({avg_col + 1})")
        values = [float(v.split()[0]) for v in _column(b, avg_col)]
        assert values == sorted(values)
        assert b.evaluate(
            f"document.querySelectorAll('#scores thead th')[{avg_col}].getAttribute('aria-sort')"
        ) == ("ascending")
        shot = b.screenshot(ARTIFACTS / "report.png")
        assert not b.errors(), b.errors()
        assert all(u.startswith(("file:", "data:", "about:")) for u in b.requests), b.requests
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
