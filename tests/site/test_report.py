"""The report of ``sasp-atlas score`` (:mod:`sasp_atlas.site.report`): computed once, rendered from the
written files, unchanged against the code before computing and writing were split (issue 27, part 3),
standalone and drawn offline."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import TESTS_DIR

from sasp_atlas.atlas import pipeline
from sasp_atlas.site.notebooks import NotebookFailed
from sasp_atlas.site.report import render_report, score_and_report
from sasp_atlas.site.sitecheck import check_site, chromium_path

TOY = TESTS_DIR / "_data" / "toy.h5ad"
#: the fingerprint of ``sasp-atlas score toy.h5ad --cell-type-key annotation --sample-key patient`` as
#: main wrote it at e386064 (the report's template still ran the pipeline again): :func:`fingerprint`
BEFORE = TESTS_DIR / "_data" / "toy_report_before.json"

# slow: one scored report of the toy (~40 s on 2 cores) and one more rendering
pytestmark = pytest.mark.slow


def _chart_numbers(value, out: list[float]) -> list[float]:
    if isinstance(value, dict):
        for k in sorted(value):
            if not k.startswith("data-") and k != "name":
                _chart_numbers(value[k], out)
    elif isinstance(value, list):
        for v in value:
            _chart_numbers(v, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out.append(float(value))
    return out


def fingerprint(out: Path, input_path: Path) -> dict:
    """What must not change: the sha256 of every table (``.csv.gz`` decompressed), the sha256 of the
    report's text (chart specifications, the inlined Vega bundle, the commit, the year and the input's
    folder taken out) and, per chart, the count and absolute sum of its numbers (the charts are drawn
    from the written tables now, whose floats have 6 significant digits)."""
    tables = {}
    for path in sorted(out.rglob("*.csv*")):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        tables[path.relative_to(out).as_posix()] = hashlib.sha256(data).hexdigest()
    html = (out / "report.html").read_text(encoding="utf-8")
    specs = re.findall(r"var spec = (\{.*?\});\n", html)
    text = re.sub(r"var spec = \{.*?\};\n", "", html)
    text = re.sub(r"<script>.*?</script>", "", text, flags=re.S)
    text = text.replace(str(input_path.resolve().parent), "INPUT_DIR")
    text = re.sub(r"commit [0-9a-z]+", "commit X", text)
    text = re.sub(r"\(\d{4}\)", "(YEAR)", text)
    charts = []
    for spec in specs:
        numbers = _chart_numbers(json.loads(spec), [])
        charts.append([len(numbers), sum(abs(x) for x in numbers if math.isfinite(x))])
    return {"tables": tables, "report_text": hashlib.sha256(text.encode()).hexdigest(), "charts": charts}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The toy scored and reported once, counting the runs of the scoring core."""
    folder = tmp_path_factory.mktemp("score")
    toy = folder / "input" / "toy.h5ad"
    toy.parent.mkdir()
    shutil.copy(TOY, toy)
    runs = {"score_tables": 0}  # the one scoring core of every path
    with pytest.MonkeyPatch.context() as mp:
        for name in runs:
            real = getattr(pipeline, name)

            def counted(*args, _real=real, _name=name, **kwargs):
                runs[_name] += 1
                return _real(*args, **kwargs)

            mp.setattr(pipeline, name, counted)
        written = score_and_report(toy, folder / "out", cell_type_key="annotation", sample_key="patient")
    return {"toy": toy, "out": folder / "out", "written": written, "runs": runs}


def test_score_runs_the_pipeline_once(scored):
    assert scored["runs"] == {"score_tables": 1}
    assert set(scored["written"]) == {"celltype_scores", "coverage", "scored", "report"}


def test_tables_and_report_are_unchanged_against_the_build_before(scored):
    before = json.loads(BEFORE.read_text())
    now = fingerprint(scored["out"], scored["toy"])
    assert now["tables"] == before["tables"]
    assert now["report_text"] == before["report_text"], "the report's text changed"
    assert len(now["charts"]) == len(before["charts"])
    for (n_now, sum_now), (n_before, sum_before) in zip(now["charts"], before["charts"]):
        assert n_now == n_before and math.isclose(sum_now, sum_before, rel_tol=1e-5)


def test_the_report_renders_from_the_written_files_alone(scored, tmp_path):
    """The template reads scored.h5ad and the tables: with the input gone, the same report again."""
    out = tmp_path / "out"
    shutil.copytree(scored["out"], out)
    gone = tmp_path / "input" / "toy.h5ad"  # never written: the report must not read the input
    (out / "report.html").unlink()
    shutil.rmtree(out / "report_files" / "figures")
    render_report(
        gone,
        out,
        scored=out / "scored.h5ad",
        signatures=list(pipeline.DEFAULT_SIGNATURES),
        method="expected",
        random_state=0,
        title="SASP signature scores: toy.h5ad",
    )

    def strip(html: str) -> str:  # the input's folder, and the commit (a test run may straddle one)
        return re.sub(r"commit [0-9a-z]+", "commit X", re.sub(r"(file://|INPUT_DIR)\S*toy\.h5ad", "", html))

    again = (out / "report.html").read_text(encoding="utf-8").replace(str(gone.parent), "INPUT_DIR")
    first = (scored["out"] / "report.html").read_text(encoding="utf-8").replace(str(scored["toy"].parent), "INPUT_DIR")
    assert strip(again) == strip(first)


def test_report_is_standalone_and_draws_offline(scored, tmp_path):
    out, report = scored["out"], scored["written"]["report"]
    assert report == out / "report.html"
    text = report.read_text()
    assert text.count("<script>(function () {") == 1 and "window.vegaEmbed" in text  # the bundle, once, inline
    assert "cdn.jsdelivr" not in text and "Traceback" not in text
    assert "SASP signature scores: toy.h5ad" in text and "User-provided data: toy.h5ad" in text
    assert 'href="report_files/figures/' in text and 'href="../../_static' not in text
    n_charts = text.count('class="sasp-chart"')
    assert n_charts >= 5
    # a user's data gets the SASP composition and communication sections of the dataset pages
    assert "SASP composition" in text and "SASP communication" in text and "sasp-composition" in text
    tables = out / "report_files" / "tables" / "datasets" / "toy"
    comp = pd.read_csv(tables / "sasp_class_scores.csv")
    comp = comp[comp["share"].notna()]
    assert len(comp) and ((comp.groupby("cell_type")["share"].sum() - 1).abs() < 1e-5).all()
    assert (tables / "sasp_communication.csv").exists()
    assert (out / "report_files" / "tables" / "sasp_classes.csv").exists()
    # the page's tables and the ones beside the report are one computation's
    assert (tables / "celltype_scores.csv").read_bytes() == (out / "celltype_scores.csv").read_bytes()

    if chromium_path() is None:
        pytest.skip("Debian chromium not installed: the offline drawing check needs it")
    site = tmp_path / "site"
    shutil.copytree(out / "report_files", site / "report_files")
    shutil.copy(report, site / "index.html")
    result = check_site(site)
    (page,) = result["pages"]
    assert page["charts"] == n_charts and page["drawn"] >= n_charts
    assert page["external"] == [] and page["errors"] == 0 and result["ok"], page


def test_a_failing_report_notebook_publishes_nothing(tmp_path):
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Page"),
        nbformat.v4.new_code_cell("input_h5ad = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("raise ValueError('boom in the page')"),
    ]
    template = tmp_path / "template.ipynb"  # any jupytext-readable template
    nbformat.write(nb, template)
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("an older report")
    with pytest.raises(NotebookFailed, match="the report notebook failed"):
        render_report(
            tmp_path / "user.h5ad",
            out,
            scored=tmp_path / "scored.h5ad",
            signatures=["senmayo"],
            method="scanpy",
            random_state=0,
            title="t",
            template=template,
        )
    assert not (out / "report.html").exists()
    assert list(out.rglob("*.html")) == [] and list(out.rglob("*.ipynb")) == []
