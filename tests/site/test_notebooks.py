"""The one papermill runner: templates are thin text notebooks; executed pages are tidied, and a
traceback is never published."""

from __future__ import annotations

import nbformat
import pytest
from conftest import PROJECT_ROOT

from sasp_atlas.site.notebooks import TEMPLATES, NotebookFailed, template_notebook
from sasp_atlas.site.notebooks import tidy as _tidy


def _notebook(tmp_path, outputs):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Template title"),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("y = 2", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("x + y"),
    ]
    nb.cells[-1].outputs = outputs
    path = tmp_path / "page.ipynb"
    nbformat.write(nb, path)
    return path


def test_tidy_hides_parameters_and_sets_title(tmp_path):
    path = _notebook(
        tmp_path,
        [
            nbformat.v4.new_output("stream", name="stderr", text="noise"),
            nbformat.v4.new_output("execute_result", data={"text/plain": "3"}),
        ],
    )
    _tidy(path, "Dataset X")
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].source == "# Dataset X"
    assert "remove-cell" in nb.cells[1].metadata["tags"] and "remove-cell" in nb.cells[2].metadata["tags"]
    assert [o["output_type"] for o in nb.cells[3].outputs] == ["execute_result"]


def test_tidy_refuses_a_notebook_with_a_traceback(tmp_path):
    path = _notebook(tmp_path, [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])])
    with pytest.raises(NotebookFailed, match="ValueError: boom"):
        _tidy(path, "Dataset X")


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_are_thin_text_notebooks(name):
    """Each template is a jupytext percent-format .py file with one ``parameters`` cell first, no
    blanket warning filter and no page policy by indexing (that lives in sasp_atlas.site.policy)."""
    path = PROJECT_ROOT / "notebooks" / f"{name}.py"
    text = path.read_text()
    assert text.startswith("# ---\n# jupyter:") and "# %%" in text
    nb = template_notebook(name)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    params = [i for i, t in enumerate(tags) if "parameters" in t]
    assert len(params) == 1 and all(nb.cells[i].cell_type == "markdown" for i in range(params[0])), name
    assert 'filterwarnings("ignore")' not in text and "signatures[" not in text and "startswith(" not in text
    assert "policy.setup_page()" in text
