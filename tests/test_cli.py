"""The command line (:mod:`sasp_atlas.cli`) as a user meets it (issue 27, items 4 and 6): fast start, --version,
list formats, the score options; each command parses its arguments and calls one function."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT, TESTS_DIR

from sasp_atlas import cli
from sasp_atlas.atlas import UserOptions

SRC = PROJECT_ROOT / "src"
TOY = TESTS_DIR / "_data" / "toy.h5ad"


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sasp_atlas.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        cwd=PROJECT_ROOT,
    )


def test_help_defaults_agree_with_the_layers_that_define_them():
    from sasp_atlas.atlas import REPORT_CELLS  # noqa: PLC0415
    from sasp_atlas.engines import DEFAULT_METHOD  # noqa: PLC0415

    assert cli.DEFAULT_METHOD == DEFAULT_METHOD and cli.REPORT_CELLS == REPORT_CELLS


def _enums(node, key):
    if isinstance(node, dict):
        if isinstance(node.get(key), dict) and "enum" in node[key]:
            yield set(node[key]["enum"])
        for v in node.values():
            yield from _enums(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _enums(v, key)


def test_value_types_are_the_registry_ones_and_the_users():
    """``score --value-type`` accepts every value type the registry's schema knows, and log_normalised."""
    from sasp_atlas.data.user import USER_VALUE_TYPES  # noqa: PLC0415

    schema = json.loads((SRC / "sasp_atlas" / "sources" / "registry_schema.json").read_text())
    dataset_types = next(_enums(schema, "value_type"))  # the datasets' enum (ground truth adds bulk cpm_like)
    assert {"raw_counts", "tpm", "tpm_like", "log2_tpm10_plus1"} == dataset_types
    assert set(cli.VALUE_TYPES) == dataset_types | {"log_normalised"} and cli.VALUE_TYPES == USER_VALUE_TYPES


def test_version():
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("sasp-atlas 0.")


@pytest.mark.slow  # over 5 s on 2 cores (subprocesses / real data)
def test_list_piped_is_a_plain_table_with_every_id_whole():
    from sasp_atlas.sources import list_datasets  # noqa: PLC0415

    proc = _run("list", "--profile", "full")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[0] == "id" and set(lines[1]) <= {"-", " "}
    ids = [line.split()[0] for line in lines[2:]]
    assert ids == [d.id for d in list_datasets("full")]
    assert "│" not in proc.stdout and "┃" not in proc.stdout  # no rich box


@pytest.mark.slow  # over 5 s on 2 cores (subprocesses / real data)
def test_list_tsv_and_json_and_registry_donors():
    tsv = _run("list", "--format", "tsv").stdout.splitlines()
    header = tsv[0].split("\t")
    rows = {r.split("\t")[0]: dict(zip(header, r.split("\t"))) for r in tsv[1:]}
    assert rows["winterhoff2017_hgsoc_c1"]["donors"] == "2"
    assert rows["tirosh2016_oligodendroglioma"]["donors"] == "5"
    assert rows["puram2017_hnscc_chetah_ref"]["donors"] == "not recorded"
    data = json.loads(_run("list", "--format", "json").stdout)
    assert [d["id"] for d in data] == list(rows)


def test_the_reproduce_page_and_the_readme_say_how_to_rerun_and_open_one_page():
    from sasp_atlas.site.pages import ONE_PAGE_MARKDOWN, reproduce_page_markdown  # noqa: PLC0415

    text = reproduce_page_markdown([], [], commit="abc1234", version="0.1.0")
    readme = (PROJECT_ROOT / "README.md").read_text()
    for where in (text, readme):
        assert ONE_PAGE_MARKDOWN in where
    for needle in (
        "sasp-atlas page tirosh2016_oligodendroglioma",
        "jupytext --set-formats ipynb,py:percent notebooks/dataset.py",
        "`parameters`",
    ):
        assert needle in ONE_PAGE_MARKDOWN
    # the commands it shows parse with the CLI's own parser
    for line in ONE_PAGE_MARKDOWN.splitlines():
        if line.startswith("sasp-atlas page"):
            args = cli.build_parser().parse_args(line.split("#")[0].split()[1:])
            assert args.func is cli.cmd_page


def test_score_value_type_option_reaches_the_loader():
    args = cli.build_parser().parse_args(["score", "in.h5ad", "--out", "o", "--value-type", "tpm"])
    assert cli._user_options(args)["value_type"] == "tpm"


def test_score_options_are_the_user_options():
    """The ``score`` options describing the file are the fields of :class:`sasp_atlas.atlas.UserOptions`,
    with its defaults (``--help`` shows them without importing the atlas, so that it stays fast)."""
    args = cli.build_parser().parse_args(["score", "in.h5ad", "--out", "o"])
    assert set(cli._user_options(args)) == {f.name for f in dataclasses.fields(UserOptions)}
    assert UserOptions(**cli._user_options(args)) == UserOptions()


@pytest.mark.slow
def test_cli_score(tmp_path, capsys):
    path = tmp_path / "user.h5ad"
    shutil.copy(TOY, path)
    rc = cli.main(["score", str(path), "--out", str(tmp_path / "bad"), "--cell-type-key", "celltype"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "error: cell_type_key 'celltype' is not an obs column" in err
    assert not (tmp_path / "bad").exists()
    rc = cli.main(
        [
            "score",
            str(path),
            "--out",
            str(tmp_path / "ok"),
            "--cell-type-key",
            "annotation",
            "--signatures",
            "senmayo",
            "--no-report",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0
    assert "warning: no sample_key" in " ".join(captured.err.split())
    assert f"celltype_scores\t{tmp_path / 'ok' / 'celltype_scores.csv'}" in captured.out


@pytest.mark.slow
def test_page_executes_one_dataset_with_the_runner(tmp_path):
    """`sasp-atlas page` on the smallest core dataset (184 cells): the executed notebook, its HTML and
    the page's files, and no third-party warning (the kernel's TCP notice) on the terminal."""
    proc = _run("page", "tirosh2016_oligodendroglioma", "--out", str(tmp_path), "--signatures", "senmayo")
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb, page = tmp_path / "tirosh2016_oligodendroglioma.ipynb", tmp_path / "tirosh2016_oligodendroglioma.html"
    assert nb.is_file() and page.is_file() and (tmp_path / "tirosh2016_oligodendroglioma_files" / "figures").is_dir()
    assert "without encryption" not in proc.stderr and "Warning" not in proc.stderr
    assert '"senmayo"' in nb.read_text() or "'senmayo'" in nb.read_text()
    assert 'href="tirosh2016_oligodendroglioma_files/figures/' in page.read_text()
